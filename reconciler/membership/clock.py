"""How far this replica's clock is from the membership service's (PostgreSQL's clock).

Replicas time slots by their own clocks, and the run store keeps what each one's clock said: a
replica N s ahead runs its tasks N s early, and a task that moves to or from it skips or
supersedes about N s of slots (its catch-up counts from a slot another clock recorded). No
replica compares the clocks otherwise, so each renewal estimates ours against the service's, as
NTP does: the service read its clock somewhere within the renewal's round trip, so the midpoint
of the round trip on our clock, less the service's time, is the offset, off by at most half the
round trip (:func:`estimate`). :func:`advice` decides, from those numbers alone, what to say: a
warning once the offset is surely beyond :data:`LIMIT` (by more than its uncertainty: a slow
renewal is no skew), again when it changed materially or :data:`SAY_AGAIN_EVERY` later while it
stays beyond, and a word once it is surely back within :data:`BACK_WITHIN`, half a
:data:`MATERIAL` below the limit: an offset hovering about the limit is said once, not at every
renewal. After that word the last warning still counts: sooner than :data:`SAY_AGAIN_EVERY`
after it, a warning is said again only if the offset changed materially since (a clock stepped
to and fro would otherwise say both at every renewal). :class:`ClockWatch` keeps what was said,
logs it, and holds the last estimate (``crontask_clock_offset_seconds``).

Kubernetes Leases have no such clock here: each replica dates its own Lease, and liveness is
judged by when a change is observed (``membership.leases``), so nothing is estimated there.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Final, Literal

log = logging.getLogger("crontask.membership")

LIMIT: Final = 1.0  # seconds off beyond which a warning is logged
MATERIAL: Final = 1.0  # a change of the offset (beyond its uncertainty) worth saying again
SAY_AGAIN_EVERY: Final = 600.0  # seconds: said again at least this often while it lasts
# Seconds off within which it agrees again: below the limit, so that the estimate's jitter about
# the limit (a clock a second off) is neither warned of nor said to agree at every renewal.
BACK_WITHIN: Final = LIMIT - MATERIAL / 2

Say = Literal["warn", "back"]


@dataclasses.dataclass(frozen=True, slots=True)
class Offset:
    seconds: float  # our clock less the service's: positive when ours is ahead
    uncertainty: float  # the truth is within this of ``seconds``: half the round trip


def estimate(before: datetime, after: datetime, service: datetime) -> Offset | None:
    """The offset of our clock, read ``before`` and ``after`` a call during which the service
    read ``service`` on its own; None if ours went back meanwhile (stepped: no midpoint)."""
    trip = after - before
    if trip.total_seconds() < 0:
        return None
    return Offset((before + trip / 2 - service).total_seconds(), trip.total_seconds() / 2)


@dataclasses.dataclass(frozen=True, slots=True)
class Said:
    """The warning last logged: the offset it named, when (monotonic seconds), and whether it
    stands (False once the clock was said to agree again)."""

    seconds: float
    at: float
    stands: bool = True


def advice(said: Said | None, offset: Offset, at: float) -> tuple[Said | None, Say | None]:
    """What to log of ``offset``, estimated at ``at`` (monotonic seconds), after ``said`` (None:
    no warning yet), and the warning last logged then (see the module docstring)."""
    beyond = abs(offset.seconds) - offset.uncertainty > LIMIT
    if said is None:
        return (Said(offset.seconds, at), "warn") if beyond else (None, None)
    if said.stands and abs(offset.seconds) + offset.uncertainty <= BACK_WITHIN:
        return dataclasses.replace(said, stands=False), "back"
    # From the last warning, whether it stands or not: one said to agree again minutes ago
    # is not warned of again at once for the same offset.
    changed = abs(offset.seconds - said.seconds) - offset.uncertainty >= MATERIAL
    if beyond and (changed or at - said.at >= SAY_AGAIN_EVERY):
        return Said(offset.seconds, at), "warn"
    return said, None  # unchanged, or too uncertain to tell: nothing new to say


class ClockWatch:
    """Estimates the offset at each renewal that reads the service's clock, and logs what
    :func:`advice` says. Used by one renewal at a time."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.offset: Offset | None = None  # the last estimate
        self._said: Said | None = None
        self._monotonic = monotonic

    @property
    def seconds(self) -> float | None:
        """The last estimate's offset (``Membership.clock_offset``); None before one."""
        return None if self.offset is None else self.offset.seconds

    def note(self, before: datetime, after: datetime, service: datetime) -> None:
        found = estimate(before, after, service)
        if found is None:
            return  # the last estimate stands
        self.offset = found
        self._said, say = advice(self._said, found, self._monotonic())
        fields = {
            "offset_seconds": round(found.seconds, 3),
            "uncertainty_seconds": round(found.uncertainty, 3),
        }
        if say == "warn":
            log.warning(
                "this replica's clock is off the database's (offset_seconds > 0: ahead): "
                "replicas time slots by their own clocks, so its tasks run that far off, and a "
                "task moved to or from it skips or supersedes that many seconds of slots; keep "
                "the replicas' clocks in sync (NTP)",
                extra={"fields": fields},
            )
        elif say == "back":
            log.info(
                "this replica's clock agrees with the database's again",
                extra={"fields": fields},
            )
