"""next_after against a slow reference that applies the DST rule literally.

The reference steps through UTC instants (minute by minute, or second by second for schedules
with a seconds field), looks at each instant's local wall time and fires when:
* wildcard (hour field starts with "*"): the wall time matches;
* fixed: the wall time matches and is its first occurrence (fold == 0), or the instant is a
  spring-forward jump and some wall time skipped by that jump matches.
Field values come from the generator, not from the parser under test.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reconciler.core.schedule import ScheduleError, parse_schedule

# Real 2025/2026 UTC-offset transitions (instants in UTC).
TRANSITIONS = [
    ("Europe/Berlin", "2026-03-29T01:00:00"),
    ("Europe/Berlin", "2026-10-25T01:00:00"),
    ("Europe/Dublin", "2026-03-29T01:00:00"),
    ("America/New_York", "2026-03-08T07:00:00"),
    ("America/New_York", "2026-11-01T06:00:00"),
    ("America/St_Johns", "2026-03-08T05:30:00"),
    ("America/St_Johns", "2026-11-01T04:30:00"),
    ("Australia/Lord_Howe", "2026-04-04T15:00:00"),
    ("Australia/Lord_Howe", "2026-10-03T15:30:00"),
    ("Australia/Sydney", "2026-04-04T16:00:00"),
    ("Australia/Sydney", "2026-10-03T16:00:00"),
    ("Pacific/Chatham", "2026-04-04T14:00:00"),
    ("Pacific/Chatham", "2026-09-26T14:00:00"),
    ("America/Havana", "2026-03-08T05:00:00"),
    ("America/Havana", "2026-11-01T05:00:00"),
    ("America/Santiago", "2026-04-05T03:00:00"),
    ("America/Santiago", "2026-09-06T04:00:00"),
    ("Africa/Cairo", "2026-04-23T22:00:00"),
    ("Africa/Cairo", "2026-10-29T21:00:00"),
    ("Africa/Casablanca", "2026-02-15T02:00:00"),
    ("Africa/Casablanca", "2026-03-22T02:00:00"),
    ("UTC", "2026-03-29T01:00:00"),
    ("Asia/Tokyo", "2026-03-29T01:00:00"),
    ("Asia/Kathmandu", "2026-12-31T18:15:00"),  # New Year, local midnight
]


MAX_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclasses.dataclass(frozen=True)
class Fields:
    text: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # Sunday is 0
    dom_star: bool
    dow_star: bool
    wildcard: bool

    def matches(self, wall: datetime) -> bool:
        if not (
            wall.second in self.seconds
            and wall.minute in self.minutes
            and wall.hour in self.hours
            and wall.month in self.months
        ):
            return False
        dom = wall.day in self.days
        dow = wall.isoweekday() % 7 in self.weekdays
        return (dom and dow) if self.dom_star or self.dow_star else (dom or dow)


@st.composite
def item(draw: st.DrawFn, low: int, high: int) -> tuple[str, set[int]]:
    kind = draw(st.sampled_from(["star", "star", "star_step", "value", "range", "step", "a/n"]))
    if kind == "star":
        return "*", set(range(low, high + 1))
    if kind == "star_step":
        n = draw(st.integers(1, high))
        return f"*/{n}", set(range(low, high + 1, n))
    a = draw(st.integers(low, high))
    if kind == "value":
        return str(a), {a}
    if kind == "a/n":
        n = draw(st.integers(1, high))
        return f"{a}/{n}", set(range(a, high + 1, n))
    b = draw(st.integers(a, high))
    if kind == "range":
        return f"{a}-{b}", set(range(a, b + 1))
    n = draw(st.integers(1, high))
    return f"{a}-{b}/{n}", set(range(a, b + 1, n))


@st.composite
def field(draw: st.DrawFn, low: int, high: int, star_bias: bool) -> tuple[str, frozenset[int]]:
    if star_bias and draw(st.booleans()):
        return "*", frozenset(range(low, high + 1))
    items = draw(st.lists(item(low, high), min_size=1, max_size=3))
    values: set[int] = set()
    for _, part in items:
        values |= part
    return ",".join(text for text, _ in items), frozenset(values)


def hours_field() -> st.SearchStrategy[tuple[str, frozenset[int]]]:
    # Mostly hours near the local transitions (0-3 and 22-23), so that gaps and repeats matter.
    near = st.lists(st.sampled_from([0, 1, 2, 3, 22, 23]), min_size=1, max_size=3, unique=True)
    return st.one_of(
        field(0, 23, star_bias=False),
        near.map(lambda hours: (",".join(map(str, hours)), frozenset(hours))),
    )


@st.composite
def cron_fields(draw: st.DrawFn, with_seconds: bool) -> Fields:
    seconds = field(0, 59, star_bias=False) if with_seconds else st.just(("", frozenset({0})))
    second_text, second_values = draw(seconds)
    minute_text, minute_values = draw(field(0, 59, star_bias=False))
    hour_text, hour_values = draw(hours_field())
    dom_text, dom_values = draw(field(1, 31, star_bias=True))
    month_text, month_values = draw(field(1, 12, star_bias=True))
    dow_text, dow_values = draw(field(0, 7, star_bias=True))
    parts = [minute_text, hour_text, dom_text, month_text, dow_text]
    if with_seconds:
        parts.insert(0, second_text)
    return Fields(
        text=" ".join(parts),
        seconds=second_values,
        minutes=minute_values,
        hours=hour_values,
        days=dom_values,
        months=month_values,
        weekdays=frozenset(0 if day == 7 else day for day in dow_values),
        dom_star=dom_text.startswith("*"),
        dow_star=dow_text.startswith("*"),
        wildcard=hour_text.startswith("*"),
    )


def offset(zone: ZoneInfo, u: int) -> int:
    delta = datetime.fromtimestamp(u, zone).utcoffset()
    assert delta is not None
    return int(delta.total_seconds())


def reference(fields: Fields, zone: ZoneInfo, start: int, stop: int, step: int) -> list[int]:
    """Fire instants u with start <= u < stop, by stepping through UTC instants.

    Transitions happen on whole minutes, so with a step of 60 or 1 the offset one step back is
    the offset just before u.
    """
    fires: list[int] = []
    first = start - start % step
    before = offset(zone, first - step)
    for u in range(first, stop, step):
        local = datetime.fromtimestamp(u, zone)
        delta = local.utcoffset()
        assert delta is not None
        now = int(delta.total_seconds())
        jump, before = now > before, now
        if u < start:
            continue
        if fields.matches(local) and (fields.wildcard or local.fold == 0):
            fires.append(u)
        elif jump and not fields.wildcard:
            # u is the instant of a spring-forward jump: did a skipped wall time match?
            gap = now - offset(zone, u - 1)
            skipped = (
                datetime(1970, 1, 1) + timedelta(seconds=u + now - gap + k)
                for k in range(0, gap, step)
            )
            if any(fields.matches(wall) for wall in skipped):
                fires.append(u)
    return fires


def check(fields: Fields, zone_name: str, after: datetime, window: int, step: int) -> None:
    try:
        schedule = parse_schedule(fields.text, zone_name)
    except ScheduleError as error:
        message = str(error)
    else:
        message = ""
    if message:
        # The only refusal a generated expression may get: no listed day exists in any
        # listed month, with day-of-week "*" (otherwise weekdays always supply days).
        assert message.startswith("never fires"), message
        assert fields.dow_star
        assert not fields.dom_star
        assert not any(d <= MAX_DAYS[m - 1] for m in fields.months for d in fields.days)
        assume(False)
    start = int(after.timestamp() // 1) + 1
    stop = start + window
    expected = reference(fields, schedule.zone, start, stop, step)

    got = schedule.fire_times(after, len(expected) + 1)
    got_seconds = [int(fire.timestamp()) for fire in got]
    assert got_seconds[: len(expected)] == expected, fields.text
    if len(got_seconds) > len(expected):
        assert got_seconds[len(expected)] >= stop, fields.text
    assert all(fire.tzinfo is schedule.zone for fire in got)

    # next_after chains to the same instants, each strictly after its argument.
    moment = after
    for fire in got[:50]:
        following = schedule.next_after(moment)
        assert following is not None
        assert following.timestamp() > moment.timestamp()
        assert following.timestamp() == fire.timestamp()
        moment = following

    count, latest = schedule.count_between(after, datetime.fromtimestamp(stop - 1, UTC))
    assert count == len(expected)
    assert (None if latest is None else int(latest.timestamp())) == (
        expected[-1] if expected else None
    )


def around(transition: str, seconds: int, microseconds: int) -> datetime:
    return datetime.fromisoformat(transition).replace(tzinfo=UTC) + timedelta(
        seconds=seconds, microseconds=microseconds
    )


PROPERTY_SETTINGS = settings(
    max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(
    fields=cron_fields(with_seconds=False),
    where=st.sampled_from(TRANSITIONS),
    shift=st.integers(-36 * 3600, 6 * 3600),
    microseconds=st.sampled_from([0, 0, 1, 999_999]),
)
def test_minute_schedules_match_reference(
    fields: Fields, where: tuple[str, str], shift: int, microseconds: int
) -> None:
    zone, transition = where
    check(fields, zone, around(transition, shift, microseconds), window=48 * 3600, step=60)


@PROPERTY_SETTINGS
@given(
    fields=cron_fields(with_seconds=True),
    where=st.sampled_from(TRANSITIONS),
    shift=st.integers(-5400, 1800),
    microseconds=st.sampled_from([0, 1, 500_000]),
)
def test_second_schedules_match_reference(
    fields: Fields, where: tuple[str, str], shift: int, microseconds: int
) -> None:
    zone, transition = where
    check(fields, zone, around(transition, shift, microseconds), window=2 * 3600, step=1)
