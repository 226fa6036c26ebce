"""Timestamps as the API writes them (RFC 3339, seconds) and ages as printers show them."""

from __future__ import annotations

from datetime import UTC, datetime


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Go's time.Duration is an int64 of nanoseconds: time.Since saturates at this many seconds.
_GO_DURATION_MAX = (2**63 - 1) // 10**9


def rfc3339(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}Z"  # %Y writes year 1 as "1"


def parse_time(value: str) -> datetime:
    """An RFC 3339 time (``2024-01-02T03:04:05Z``, or with fractions or an offset) in UTC;
    ValueError when it is none. A time UTC cannot hold in a ``datetime`` (the API server takes
    ``9999-12-31T23:00:00-05:00``, year 10000 in UTC, as Go's time can) keeps its offset: it
    still compares and subtracts as the instant it is."""
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"no time zone in {value!r}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return parsed


def human_duration(seconds_total: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration of a ``time.Since``: saturated as
    Go's durations are (a time centuries ago shows ``292y``)."""
    seconds = int(max(-_GO_DURATION_MAX, min(seconds_total, _GO_DURATION_MAX)))
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"
