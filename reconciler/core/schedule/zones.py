"""Time zones: validating IANA names, and where a zone's UTC offset changes.

The DST rules in :mod:`.cron` need the instants at which a zone's UTC offset changes.
:mod:`zoneinfo` does not expose its transition table, so the transitions of one UTC year are
found by probing the offset twice a day and bisecting to the exact second, then memoised per
``(zone, year)``. Memoising is not a clock read or I/O: the result depends only on the
arguments (and on the tzdata that :class:`~zoneinfo.ZoneInfo` itself loaded). A zone whose
TZif data hold no offset change at all is not searched; that is read from its file once
(:mod:`.tzif`), the package's one read besides ZoneInfo's and, for the message of a name that
is no zone, the list of zone names (once).

All instants here are integer Unix seconds ("u"); offsets are integer seconds east of UTC.
"""

from __future__ import annotations

import bisect
import functools
import re
import zoneinfo
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from . import tzif
from .errors import ScheduleError

DAY = 86_400
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# The closest pair of UTC-offset changes in tzdata since 1900 is ~4 days apart (Africa/Freetown,
# 1939); the rules tzdata projects into the future are weeks apart. Probing every 12 hours can
# therefore not step over a change and its reversal, which is the only way to miss a transition.
_PROBE = 12 * 3600

# The searchable years. datetime stops at 9999, and a zone offset of up to a day on either side
# must still be representable when an instant is turned into a local datetime.
MIN_YEAR = 2
MAX_YEAR = 9998

# IANA names are ASCII path-like words ("America/Argentina/Buenos_Aires", "Etc/GMT+5"). Anything
# else (absolute or relative file paths, "..", spaces) is refused before ZoneInfo sees it.
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*")
# Files that live in the zoneinfo directory but are not IANA zones: the host's local zone, the
# POSIX default rules, and the alternative trees ("right/" counts leap seconds).
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})
_NOT_ZONE_PREFIXES = ("posix/", "right/")


def validate_time_zone(name: str) -> ZoneInfo:
    """The IANA time zone called ``name``; :class:`ScheduleError` if there is none."""
    if not name.strip():
        raise ScheduleError("time zone must not be empty")
    if not _is_zone_name(name):
        raise _unknown(name)
    try:
        return ZoneInfo(name)
    # ZoneInfoNotFoundError is a KeyError; a directory ("Europe") raises IsADirectoryError; a
    # corrupt file raises ValueError.
    except (KeyError, OSError, ValueError) as err:
        raise _unknown(name) from err


def _is_zone_name(name: str) -> bool:
    return bool(_ZONE_NAME.fullmatch(name)) and not (
        name in _NOT_ZONES or name.startswith(_NOT_ZONE_PREFIXES)
    )


def _unknown(name: str) -> ScheduleError:
    """The error of ``name``, no zone, naming the zone it meant when it is one in another case
    or with spaces for underscores (``utc``, ``America/New York``): a zone's name is a file's,
    case-sensitive on most systems."""
    meant = _zones_by_folded().get(name.strip().replace(" ", "_").casefold())
    hint = f" (did you mean {meant!r}?)" if meant is not None else ""
    return ScheduleError(f"unknown time zone {name!r}{hint}")


@functools.cache
def _zones_by_folded() -> dict[str, str]:
    """Every zone a task may name, by its name case-folded (read once: a tenth of a second)."""
    try:
        names = zoneinfo.available_timezones()
    except OSError:  # pragma: no cover - a zoneinfo folder that cannot be listed: no hint
        return {}
    return {n.casefold(): n for n in sorted(names) if _is_zone_name(n)}


def offset_at(zone: ZoneInfo, u: int) -> int:
    """The UTC offset of ``zone`` (seconds east) at instant ``u``."""
    offset = datetime.fromtimestamp(u, zone).utcoffset()
    if offset is None:  # pragma: no cover - ZoneInfo always answers
        raise ValueError(f"time zone {zone.key!r} has no UTC offset")
    return offset // timedelta(seconds=1)


def year_of(u: int) -> int:
    """The UTC calendar year of instant ``u``."""
    return date.fromordinal(EPOCH_ORDINAL + u // DAY).year


def year_start(year: int) -> int:
    """The instant at which UTC year ``year`` begins."""
    return (date(year, 1, 1).toordinal() - EPOCH_ORDINAL) * DAY


def keeps_one_offset(zone: ZoneInfo) -> bool:
    """Whether ``zone``'s UTC offset never changes, so that it has no transitions to look for.

    Known from the zone's TZif data (:mod:`.tzif`), not by probing its offsets (no number of
    probes proves there is no change between them) nor by its name (a tz tree may hold any
    rules under "Etc/GMT+5"). Only for the zone ZoneInfo loads under its key, whose data are
    the file read: one read with ``ZoneInfo.from_file(..., key="UTC")`` or built with
    ``no_cache`` may hold any rules, and is probed; so is one whose file cannot be read or
    parsed."""
    key = zone.key
    if key is None:
        return False
    try:
        if ZoneInfo(key) is not zone:
            return False
    except (KeyError, OSError, ValueError):  # a name the zone was given, not one of tzdata's
        return False
    return _data_keep_one_offset(zone, key)


# Per zone object, so the file is read once for as long as ZoneInfo keeps handing out that
# object (the cache holds it); after ZoneInfo.clear_cache() the key's next zone is read afresh.
@functools.lru_cache(maxsize=1024)
def _data_keep_one_offset(zone: ZoneInfo, key: str) -> bool:
    try:
        return tzif.holds_one_offset(tzif.read(key))
    except (ImportError, OSError, ValueError):  # unreadable or not TZif: probed
        return False


Transition = tuple[int, int, int]  # (instant, offset before, offset from the instant on)


@functools.lru_cache(maxsize=16_384)
def year_transitions(zone: ZoneInfo, year: int) -> tuple[Transition, ...]:
    """The offset changes of ``zone`` at instants in UTC year ``year``, in order."""
    end = year_start(year + 1) - 1
    t = year_start(year) - 1
    before = offset_at(zone, t)
    found: list[Transition] = []
    while t < end:
        probe = min(t + _PROBE, end)
        if offset_at(zone, probe) == before:
            t = probe
            continue
        # The first second in (t, probe] whose offset differs from `before`.
        lo, hi = t, probe
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if offset_at(zone, mid) == before:
                lo = mid
            else:
                hi = mid
        after = offset_at(zone, hi)
        found.append((hi, before, after))
        t, before = hi, after
    return tuple(found)


def _every_year(year: int) -> bool:
    return True


def _no_year(year: int) -> bool:
    return False


def segments(
    zone: ZoneInfo, u: int, last_year: int, wanted: Callable[[int], bool] = _every_year
) -> Iterator[tuple[int, int, int, int]]:
    """Cut the timeline from ``u`` to the end of UTC year ``last_year`` into constant-offset pieces.

    Yields ``(start, end, offset, previous_offset)``: instants in ``[start, end)`` have UTC offset
    ``offset``; ``previous_offset`` is the offset just before ``start``. The first piece is the
    one containing ``u`` (so ``start <= u``). Pieces are also split at UTC year boundaries, where
    ``previous_offset == offset``; callers treat such a split as a no-op.

    A year for which ``wanted`` says False is passed over without looking for its transitions
    (a year of them costs about a millisecond): its piece runs to the year's end with whatever
    offset was in force before (or at ``u``), and the next year starts afresh with the offset at
    its first instant, as if no transition preceded it. That is only right when nothing the
    caller looks for lies within two days of the year (wall times stay within a day of their
    instants: a UTC offset is less than a day), which is what ``wanted`` must promise.
    """
    if keeps_one_offset(zone):
        # No year has changes to find: each is passed over, and its offset read at its start
        # is the one offset. Finding none cost a millisecond a year: over a second of
        # `next -n 1000` for a schedule that fires once in one year or four.
        wanted = _no_year
    year = year_of(u)
    current = offset_at(zone, u)
    # Without a transition nearby, the piece starts at the year boundary (an artificial split).
    start, previous, offset = year_start(year), current, current
    # The last transition at or before u. DST effects reach back less than two days (an offset
    # is less than a day either way), so it only matters when it is that close to u; looking
    # into the previous year is then enough to see one that happened just before New Year.
    near_new_year = u - year_start(year) < 2 * DAY
    for candidate_year in (year, year - 1) if near_new_year else (year,):
        if not wanted(candidate_year):
            break
        transitions = year_transitions(zone, candidate_year)
        index = bisect.bisect_right(transitions, u, key=lambda tr: tr[0])
        if index:
            start, previous, offset = transitions[index - 1]
            break
    for current_year in range(year, last_year + 1):
        searched = wanted(current_year)
        if searched:
            for at, before, after in year_transitions(zone, current_year):
                if at > u:
                    yield start, at, offset, previous
                    start, previous, offset = at, before, after
        boundary = year_start(current_year + 1)
        yield start, boundary, offset, previous
        start, previous = boundary, offset
        if not searched:  # the offset from here on is read afresh (see above)
            offset = previous = offset_at(zone, boundary)


def to_datetime(u: int, zone: ZoneInfo) -> datetime:
    """Instant ``u`` as an aware datetime in ``zone`` (``fold`` set for a repeated wall time)."""
    return datetime.fromtimestamp(u, zone)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def first_second_after(moment: datetime, what: str = "after") -> int:
    """The smallest whole Unix second strictly later than ``moment`` (which must be aware)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {moment!r}")
    # Subtracting aware datetimes with different tzinfo goes through utcoffset(), which honours
    # fold, so the second occurrence of a repeated wall time is converted correctly.
    delta = moment - _EPOCH
    return delta.days * DAY + delta.seconds + 1


def last_second_at_or_before(moment: datetime, what: str = "until") -> int:
    """The largest whole Unix second not later than ``moment`` (which must be aware)."""
    return first_second_after(moment, what) - 1
