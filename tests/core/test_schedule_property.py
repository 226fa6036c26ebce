"""next_after against a slow reference that applies the DST rule literally.

The reference steps through UTC instants (minute by minute, or second by second for schedules
with a seconds field), looks at each instant's local wall time and fires when:
* wildcard (hour field starts with "*"): the wall time matches;
* fixed: the wall time matches and is its first occurrence (fold == 0), or the instant is a
  spring-forward jump and some wall time skipped by that jump matches.
Field values come from the generator, not from the parser under test. The day fields' L, W and
# items are judged by their definitions, on real dates (:func:`day_selected`), not by the
formulas of the engine; generated items are biased towards the transition's own dates, so that
"the last Sunday" meets the night the clocks change.
"""

from __future__ import annotations

import dataclasses
import functools
from datetime import UTC, date, datetime, timedelta
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
    ("Pacific/Apia", "2011-12-30T10:00:00"),  # UTC-10 to UTC+14: Friday Dec 30 never happened
    ("Pacific/Kiritimati", "1994-12-31T10:00:00"),  # likewise Saturday Dec 31, 1994
]


# --- the day fields, by definition ----------------------------------------------------------


def posix_weekday(day: date) -> int:
    return day.isoweekday() % 7  # Sunday 0


@functools.cache
def month_dates(year: int, month: int) -> tuple[date, ...]:
    day, dates = date(year, month, 1), []
    while day.month == month:
        dates.append(day)
        day += timedelta(days=1)
    return tuple(dates)


def is_monday_to_friday(day: date) -> bool:
    return day.isoweekday() <= 5


@functools.cache
def nearest_monday_to_friday(year: int, month: int, n: int) -> int | None:
    """NW: the Monday-to-Friday date of the month closest to day n; None without a day n."""
    dates = month_dates(year, month)
    if n > len(dates):
        return None
    return min((day.day for day in dates if is_monday_to_friday(day)), key=lambda d: abs(d - n))


@functools.cache
def last_monday_to_friday(year: int, month: int) -> int:
    return max(day.day for day in month_dates(year, month) if is_monday_to_friday(day))


def days_to_last(day: date) -> int:
    """0 on the last day of the month, 1 the day before, ..."""
    return len(month_dates(day.year, day.month)) - day.day


def is_last_of_its_weekday(day: date) -> bool:
    return (day + timedelta(days=7)).month != day.month


def nth_of_its_weekday(day: date) -> int:
    return (day.day - 1) // 7 + 1


@dataclasses.dataclass(frozen=True)
class Days:
    """What the two day fields say: plain values and their L, W and # items."""

    dom_text: str
    dow_text: str
    days: frozenset[int]
    weekdays: frozenset[int]  # Sunday is 0
    dom_last: frozenset[int] = frozenset()  # L-N: N
    dom_nearest: frozenset[int] = frozenset()  # NW: N
    dom_last_weekday: bool = False  # LW
    dow_last: frozenset[int] = frozenset()  # dL: d
    dow_nth: frozenset[tuple[int, int]] = frozenset()  # d#n: (d, n)

    @property
    def both(self) -> bool:
        return self.dom_text.startswith(("*", "?")) or self.dow_text.startswith(("*", "?"))

    def selects(self, day: date) -> bool:
        year, month = day.year, day.month
        dom = (
            day.day in self.days
            or days_to_last(day) in self.dom_last
            or any(nearest_monday_to_friday(year, month, n) == day.day for n in self.dom_nearest)
            or (self.dom_last_weekday and last_monday_to_friday(year, month) == day.day)
        )
        weekday = posix_weekday(day)
        dow = (
            weekday in self.weekdays
            or (weekday in self.dow_last and is_last_of_its_weekday(day))
            or (weekday, nth_of_its_weekday(day)) in self.dow_nth
        )
        return (dom and dow) if self.both else (dom or dow)


@dataclasses.dataclass(frozen=True)
class Fields:
    text: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    months: frozenset[int]
    day_fields: Days
    wildcard: bool

    def matches(self, wall: datetime) -> bool:
        if not (
            wall.second in self.seconds
            and wall.minute in self.minutes
            and wall.hour in self.hours
            and wall.month in self.months
        ):
            return False
        return self.day_fields.selects(wall.date())


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


def mixed_case(draw: st.DrawFn, text: str) -> str:
    return "".join(char.lower() if draw(st.booleans()) else char.upper() for char in text)


def weekday_text(draw: st.DrawFn, weekday: int) -> str:
    """A weekday (0-6) as a number (Sunday 0 or 7) or a name in any case."""
    kind = draw(st.sampled_from(["number", "name"]))
    if kind == "name":
        return mixed_case(draw, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")[weekday])
    return str(draw(st.sampled_from([0, 7]))) if weekday == 0 else str(weekday)


def anchors(dates: tuple[date, ...]) -> tuple[list[str], list[str]]:
    """Day-of-month and day-of-week L/W/# items that select one of ``dates``."""
    dom: list[str] = []
    dow: list[str] = []
    for day in dates:
        back = days_to_last(day)
        dom.append("L" if back == 0 else f"L-{back}")
        length = len(month_dates(day.year, day.month))
        dom += [
            f"{n}W"
            for n in range(1, length + 1)
            if nearest_monday_to_friday(day.year, day.month, n) == day.day
        ]
        if last_monday_to_friday(day.year, day.month) == day.day:
            dom.append("LW")
        weekday = posix_weekday(day)
        if is_last_of_its_weekday(day):
            dow.append(f"{weekday}L")
        dow.append(f"{weekday}#{nth_of_its_weekday(day)}")
    return dom, dow


# Where month lengths make a difference: near the 1st and the 28th-31st ("1W" on a Saturday,
# "31W" in a 30-day month, "L-28" in a February of 28 days).
EDGE_DAYS = (1, 2, 3, 27, 28, 29, 30, 31)
EDGE_OFFSETS = (0, 1, 2, 26, 27, 28, 29, 30)


@st.composite
def day_fields(draw: st.DrawFn, near: tuple[date, ...] = ()) -> Days:
    """Random day fields with L, W, # and ? items; some select one of the dates ``near``."""
    near_dom, near_dow = anchors(near)
    dom_kind = draw(st.sampled_from(["*", "?", "list", "list", "list"]))
    dom_items: list[str] = []
    days: set[int] = set(range(1, 32))
    last: set[int] = set()
    nearest: set[int] = set()
    last_weekday = False
    if dom_kind == "list":
        days = set()
        for _ in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from(["plain", "L", "L-n", "nW", "LW", "near", "near"]))
            if kind == "near" and not near_dom:
                kind = "plain"
            if kind == "near":
                text = draw(st.sampled_from(near_dom))
            elif kind == "plain":
                text, values = draw(item(1, 31))
                days |= values
            elif kind == "L":
                text = "L"
            elif kind == "L-n":
                text = f"L-{draw(st.one_of(st.sampled_from(EDGE_OFFSETS), st.integers(0, 30)))}"
            elif kind == "nW":
                text = f"{draw(st.one_of(st.sampled_from(EDGE_DAYS), st.integers(1, 31)))}W"
            else:
                text = "LW"
            if text == "LW":
                last_weekday = True
            elif text == "L":
                last.add(0)
            elif text.startswith("L-"):
                last.add(int(text[2:]))
            elif text.endswith("W"):
                nearest.add(int(text[:-1]))
            dom_items.append(mixed_case(draw, text) if kind != "plain" else text)
    dom_text = dom_kind if dom_kind != "list" else ",".join(dom_items)

    dow_kind = draw(st.sampled_from(["*", "?", "#", "list", "list"]))
    weekdays: set[int] = set(range(7))
    dow_last: set[int] = set()
    nth: set[tuple[int, int]] = set()
    if dow_kind == "#":
        weekdays = set()
        choices = [text for text in near_dow if "#" in text]
        use_near: bool = draw(st.booleans())
        if choices and use_near:
            weekday_number, n = (int(part) for part in draw(st.sampled_from(choices)).split("#"))
        else:
            weekday_number = draw(st.integers(0, 6))
            n = draw(st.one_of(st.sampled_from([4, 5]), st.integers(1, 5)))
        nth.add((weekday_number, n))
        dow_text = f"{weekday_text(draw, weekday_number)}#{n}"
    elif dow_kind == "list":
        weekdays = set()
        dow_items: list[str] = []
        for _ in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from(["plain", "L", "near"]))
            near_last = [text for text in near_dow if text.endswith("L")]
            if kind == "near" and not near_last:
                kind = "L"
            if kind == "plain":
                text, values = draw(item(0, 7))
                weekdays |= {0 if day == 7 else day for day in values}
            else:
                number = (
                    int(draw(st.sampled_from(near_last))[:-1])
                    if kind == "near"
                    else draw(st.integers(0, 6))
                )
                dow_last.add(number)
                text = weekday_text(draw, number) + draw(st.sampled_from(["L", "l"]))
            dow_items.append(text)
        dow_text = ",".join(dow_items)
    else:
        dow_text = dow_kind
    return Days(
        dom_text=dom_text,
        dow_text=dow_text,
        days=frozenset(days),
        weekdays=frozenset(weekdays),
        dom_last=frozenset(last),
        dom_nearest=frozenset(nearest),
        dom_last_weekday=last_weekday,
        dow_last=frozenset(dow_last),
        dow_nth=frozenset(nth),
    )


@st.composite
def cron_fields(draw: st.DrawFn, with_seconds: bool, near: tuple[date, ...] = ()) -> Fields:
    seconds = field(0, 59, star_bias=False) if with_seconds else st.just(("", frozenset({0})))
    second_text, second_values = draw(seconds)
    minute_text, minute_values = draw(field(0, 59, star_bias=False))
    hour_text, hour_values = draw(hours_field())
    days = draw(day_fields(near))
    month_text, month_values = draw(field(1, 12, star_bias=True))
    parts = [minute_text, hour_text, days.dom_text, month_text, days.dow_text]
    if with_seconds:
        parts.insert(0, second_text)
    return Fields(
        text=" ".join(parts),
        seconds=second_values,
        minutes=minute_values,
        hours=hour_values,
        months=month_values,
        day_fields=days,
        wildcard=hour_text.startswith("*"),
    )


def local_dates(zone_name: str, transition: str) -> tuple[date, ...]:
    """The local dates around a transition: the day before it to the day it lands on."""
    zone = ZoneInfo(zone_name)
    at = datetime.fromisoformat(transition).replace(tzinfo=UTC)
    first = (at - timedelta(seconds=1)).astimezone(zone).date()
    last = at.astimezone(zone).date()
    return tuple(first + timedelta(days=k) for k in range((last - first).days + 1))


@st.composite
def scenario(draw: st.DrawFn, with_seconds: bool) -> tuple[Fields, str, str]:
    zone, transition = draw(st.sampled_from(TRANSITIONS))
    fields = draw(cron_fields(with_seconds, near=local_dates(zone, transition)))
    return fields, zone, transition


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
        # The only refusal a generated expression may get: no day the day fields select exists
        # in a listed month, in any year (the Gregorian calendar repeats after 400 years).
        assert message.startswith("never fires"), message
        assert not fires_in_400_years(fields), fields.text
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


def fires_in_400_years(fields: Fields) -> bool:
    return any(
        fields.day_fields.selects(day)
        for year in range(2000, 2400)
        for month in sorted(fields.months)
        for day in month_dates(year, month)
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
    case=scenario(with_seconds=False),
    shift=st.integers(-36 * 3600, 6 * 3600),
    microseconds=st.sampled_from([0, 0, 1, 999_999]),
)
def test_minute_schedules_match_reference(
    case: tuple[Fields, str, str], shift: int, microseconds: int
) -> None:
    fields, zone, transition = case
    check(fields, zone, around(transition, shift, microseconds), window=48 * 3600, step=60)


@PROPERTY_SETTINGS
@given(
    case=scenario(with_seconds=True),
    shift=st.integers(-5400, 1800),
    microseconds=st.sampled_from([0, 1, 500_000]),
)
def test_second_schedules_match_reference(
    case: tuple[Fields, str, str], shift: int, microseconds: int
) -> None:
    fields, zone, transition = case
    check(fields, zone, around(transition, shift, microseconds), window=2 * 3600, step=1)
