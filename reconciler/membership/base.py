"""The membership seam: each replica's record, renewed, and who is alive.

Contract:

- ``renew(me)`` creates this replica's record or renews it (a join is the first renewal), with
  what it publishes (:class:`Announcement`), and returns the live members, itself included, in
  one call. It raises :class:`MembershipUnavailable` when the service cannot be reached: the
  caller then cannot know whether it is still a member and must act as if it were not once its
  renew deadline has passed (see ``controller.cluster``). Any other error is a defect, and the
  caller treats it the same way. No one record another writer left may make it raise: a record
  that does not parse is not a member.
- It returns at most ``most`` members (:data:`MOST_MEMBERS` unless told), itself always among
  them: any client of the service can write records, and a replica reads every member on every
  renewal. When more are live, the members it knows (``me.known``) come first after itself,
  then those that published a view (a digest), then those renewed (or seen to renew) most
  recently, and a warning names how many are live (:class:`Cap`). ``live_count`` says how many
  were live at the last renewal, before the cap: when more than it returned, the answer was
  cut, and may not be the one another replica got (whoever writes records sways the order), so
  the caller must judge by who is missing among the members it knows only
  (``core.assignment.assigned_over``).
- A record is live until ``lease_seconds`` have passed since its last renewal, judged by a clock
  no replica owns: PostgreSQL's ``now()``; for Kubernetes Leases, the time *this* replica
  observed each renewal, as client-go's leader election does, so no two clocks are compared.
  The lease is the one the record states, whatever the observer's own (:func:`judged_lease`):
  a replica fences itself only at its own renew deadline, so judged by a shorter lease it would
  be taken for dead between two healthy renewals, and its tasks would run on two replicas. A
  replica with another lease duration than ours is logged once (:class:`OtherLeases`).
- ``leave(me)`` deletes the record at once (a clean shutdown: the others need not wait for it
  to expire). Never raises for a record that is already gone.
- Each member's ``version`` is what it announced if that reads as a version
  (:func:`readable_version`), else None: a member of a release that did not announce one, or a
  record someone else wrote, is a member of unknown version, never an error.
- ``clock_offset`` is this replica's clock less the service's, in seconds, as the last renewal
  that read the service's clock estimated it (``membership.clock``: a warning is logged while
  it is off by more than a second); None where the service has no clock a replica can read
  (Kubernetes Leases), and before.
- Implementations are blocking and thread-safe; the controller calls them in a worker thread.

:class:`Views` is where each replica publishes the desired set it read (each task's spec hash),
so that when two replicas' digests differ they can say on which tasks: ``publish`` applies a
change (a hash, or None for a task no longer declared), ``differing`` lists the keys whose hash is
not the same for every given member (missing counts as different), ``drop`` removes a member's
view.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any, Final, Protocol

from reconciler import __version__

log = logging.getLogger("crontask.membership")

# The most members a renewal returns: far more replicas than anyone runs, few enough that
# reading them every renewal (and listing them in the API) stays cheap.
MOST_MEMBERS: Final = 1000

# The longest lease a replica can be given: --lease-duration's own bound (durations.MAX_SECONDS,
# in the CLI, above this layer). No record is judged by a longer one (:func:`judged_lease`).
LONGEST_LEASE: Final = 100 * 365 * 86400.0


# What a member's version may be: a PEP 440 version as Python packages write it (a local
# ``+g1234.d20261205`` included), at most as long as the members table's column. Anyone may
# write a Lease or a row: a value that is not one reads as unknown (None), never an error.
VERSION_MOST: Final = 64
_VERSION: Final = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+!_-]*")


def readable_version(value: object) -> str | None:
    """``value`` if it reads as a version (see :data:`_VERSION`), else None (unknown)."""
    if isinstance(value, str) and len(value) <= VERSION_MOST and _VERSION.fullmatch(value):
        return value
    return None


@dataclasses.dataclass(frozen=True)
class Timing:
    """How often a replica renews, when it stops starting runs unrenewed, when it is gone."""

    renew_interval: float = 2.0
    renew_deadline: float = 10.0
    lease_seconds: float = 15.0


class MembershipUnavailable(Exception):
    """Temporary: the membership service could not be reached; nothing is known."""


@dataclasses.dataclass(frozen=True, slots=True)
class Announcement:
    """What a replica publishes about itself with every renewal."""

    id: str  # the instance id ("host:pid:start:boot:pidns:token", see controller/instance.py)
    address: str | None = None  # where its API listens
    digest: str | None = None  # of the desired set it read (see controller.cluster)
    revision: str | None = None  # the git revision in force, if any
    owned: int = 0  # tasks it schedules
    lease_seconds: float = 15.0
    # Stopping: it schedules nothing any more (others take its tasks now), but its runs are
    # still finishing, so it stays a member until they have (nobody marks them interrupted).
    draining: bool = False
    # The crontask version it runs, so that the replicas of a rolling update can be told
    # apart; one that does not read as a version (readable_version) is published as none.
    version: str | None = __version__
    # Not published: how long this renewal may take (it is below the renew deadline), for an
    # implementation that can bound its calls; None: as long as its own timeouts allow.
    budget: float | None = None
    # Not published: the members this replica knows, ranked right after it when more are live
    # than a renewal returns (fewer than it returns: they all fit).
    known: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True, slots=True)
class Member:
    id: str
    address: str | None
    since: datetime  # when it joined
    renewed: datetime  # its last renewal (the service's clock, or the observer's)
    digest: str | None = None
    revision: str | None = None
    owned: int = 0
    draining: bool = False
    version: str | None = None  # None: unknown (a replica of a release before it was said)


class Membership(Protocol):
    def renew(self, me: Announcement) -> list[Member]: ...

    @property
    def live_count(self) -> int:
        """How many members were live at the last renewal, counted before the cap."""
        ...

    @property
    def clock_offset(self) -> float | None:
        """Seconds our clock is ahead of the service's (behind: negative), as the last renewal
        that read the service's clock estimated it; None: not known (see above)."""
        ...

    def leave(self, me: Announcement) -> None: ...

    def close(self) -> None: ...


Difference = tuple[str, dict[str, str | None]]  # a key, and its hash as each member reads it


class Views(Protocol):
    def publish(self, member: str, changes: Mapping[str, str | None]) -> None: ...

    def differing(self, members: Collection[str], limit: int = 20) -> list[Difference]: ...

    def drop(self, member: str) -> None: ...


def judged_lease(stated: float, ours: float) -> float:
    """How long a record stays live after its last renewal: the lease it states, never less (a
    replica judged by a shorter lease than its own is taken for dead while it still starts
    runs), but never more than the longest a replica can be given, or ours if that is longer
    (a members row stating more is no member at all; a Lease's int32 cannot state more)."""
    return min(stated, max(ours, LONGEST_LEASE))


class OtherLeases:
    """Logs once per member, for the life of the process, that it states another lease duration
    than ours: a replica that dies with a longer one keeps its tasks that long. Remembers at
    most ``most`` members (the oldest forgotten first): anyone may write records."""

    def __init__(self, most: int = MOST_MEMBERS) -> None:
        self._most = most
        self._told: dict[str, None] = {}  # ordered: the oldest first

    def note(self, member: str, stated: float, ours: float) -> None:
        if stated == ours or member in self._told:
            return
        if len(self._told) >= self._most:
            del self._told[next(iter(self._told))]
        self._told[member] = None
        log.warning(
            "a replica renews with another lease duration; it is judged by its own: should it "
            "stop renewing, its tasks move that long after its last renewal",
            extra={"fields": {"member": member, "lease_seconds": stated, "ours": ours}},
        )


SAY_CUT_EVERY: Final = 60.0  # seconds


class Cap:
    """At most ``most`` members in an answer; an error line as more begin to be live (naming
    how many), again every minute while they are (which tasks run where is frozen meanwhile,
    and nothing else shows what that costs: ``/readyz`` is ready, a replica may own nothing),
    and a word when they fit again. Used by one renewal at a time."""

    def __init__(self, most: int = MOST_MEMBERS, clock: Callable[[], float] = time.monotonic):
        if most < 1:
            raise ValueError(f"at least one member (this replica), got {most}")
        self.most = most
        self.live = 0  # at the last count
        self._over = False
        self._clock = clock
        self._said = 0.0  # when the error line was last said

    def kept(
        self, live: list[Member], me: Announcement, rank: Callable[[Member], Any]
    ) -> list[Member]:
        """The ``most`` first of ``live``, by id: ``me``, the members it knows, then the others
        by ``rank``."""
        self.count(len(live))
        first = sorted(live, key=lambda m: (m.id != me.id, m.id not in me.known, rank(m)))
        return sorted(first[: self.most], key=lambda m: m.id)

    def count(self, live: int) -> None:
        """Tell how many members are live (before the cap)."""
        self.live = live
        over = live > self.most
        if over and (not self._over or self._clock() - self._said >= SAY_CUT_EVERY):
            self._said = self._clock()
            log.error(
                "more members are live than a renewal reads: until they fit, the members "
                "read when they last did keep the tasks, and a replica that joins meanwhile "
                "takes none",
                extra={"fields": {"live": live, "read": self.most}},
            )
        elif self._over and not over:
            log.info("the live members are all read again", extra={"fields": {"live": live}})
        self._over = over
