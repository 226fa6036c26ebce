"""Who this process is, and the runs a dead one left ``running``.

An instance is ``host:pid:start:boot:namespace:token`` (see ``reconciler.host.Birth``): a
pid alone does not name a process for long (it is reused after a crash and a reboot, and in a
container the main process is pid 1 every time), its start time with the boot and the pid
namespace it is counted in does. The token tells apart the instances one process serves one
after the other. Where ``/proc`` cannot tell a birth, and in the records of crontasks before
it, an instance is ``host:pid:token``, judged by its pid alone.

Whether an instance is dead is proven, never guessed: from this host only what it can see (a
process of this kernel and pid namespace, whatever the host name said when it started), and
the state directory's last holder (``statedir.hold``: this process holds the directory now),
unless this host sees that holder alive (a copied or restored state directory names a
crontask that may still run). An instance elsewhere (another machine, a pod under another
name) may live and share the store (README: instances that share a run store
each have their own state directory): its runs are left to it, and said so at start, until
its heartbeat in the store stops (``controller.heartbeat`` marks them then).

A run recorded ``running`` without an owner (a store upgraded from schema 0001: revision 0002
added the column and left it empty) names no crontask to judge, and none will ever end it:
recovery ends it ``interrupted``, its owner said to be unknown (see :func:`_end_ownerless`).

A run may also have no record at all: its claim waited in memory (the store could not take
writes, README: runs still start and finish) and died with its crontask. Its command, found
running on this host with the dead crontask's instance in its environment, is stopped and
recorded ``interrupted`` all the same (see :func:`_lost_claim`), so that catch-up, which counts
missed slots from the store, does not run the slot again beside it. A store that still takes
no writes at start does not stop it: the ends wait in the recorder (:class:`Recovery`).
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import re
import secrets
import socket
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any

from reconciler import host as machine
from reconciler.core.runs import (
    DNS1123_LABEL,
    UNTOLD,
    RunRecord,
    RunStatus,
    Trigger,
    died,
    run_id,
)
from reconciler.runner import leftovers
from reconciler.store.base import RunStore, StoreUnavailable, interrupted
from reconciler.store.query import RunQuery

log = logging.getLogger("crontask")

OWNERLESS_MESSAGE = (
    "the crontask process that ran this attempt is unknown (recorded before runs had an owner) "
    "and none has ended it; its outcome is unknown"
)
# The end of a run whose claim died with its crontask (see :func:`_lost_claim`).
UNRECORDED_MESSAGE = (
    "the crontask that ran this attempt ({owner}) died before the run store took its record "
    "(the store was unavailable); its command was found running at the next start and stopped, "
    "its outcome is unknown"
)
# Bounds on what an id's numbers may be (an id is also read from environments anyone writes).
_PID_DIGITS = 9
_NEWEST_READ = 50  # records of a task read for its newest slot that ran (a lost claim's)
_NUMBER_DIGITS = 20


class Liveness(enum.Enum):
    ALIVE = "alive"
    DEAD = "dead"
    UNKNOWN = "unknown"  # on another host, or in another pid namespace: not for us to say


@dataclasses.dataclass(frozen=True, slots=True)
class Instance:
    host: str
    pid: int
    token: str
    birth: machine.Birth | None = None  # None: an id without one (see the module docstring)

    def __str__(self) -> str:
        if self.birth is None:
            return f"{self.host}:{self.pid}:{self.token}"
        b = self.birth
        return f"{self.host}:{self.pid}:{b.start}:{b.boot}:{b.pid_namespace}:{self.token}"

    @classmethod
    def parse(cls, text: str) -> Instance | None:
        """The instance ``text`` names; None if it names none (it is nobody's)."""
        parts = text.split(":")
        if len(parts) not in (3, 6) or not parts[0] or not parts[-1]:
            return None
        if not _number(parts[1], _PID_DIGITS) or int(parts[1]) == 0:
            return None
        birth = None
        if len(parts) == 6:
            start, boot, namespace = parts[2:5]
            if not (_number(start, _NUMBER_DIGITS) and _number(namespace, _NUMBER_DIGITS)):
                return None
            if not (boot.isascii() and boot.isalnum()):
                return None
            birth = machine.Birth(int(start), boot, int(namespace))
        return cls(parts[0], int(parts[1]), parts[-1], birth)


def _number(text: str, digits: int) -> bool:
    # ASCII digits only: str.isdigit takes "²" too, which int() refuses.
    return text.isascii() and text.isdigit() and 0 < len(text) <= digits


def instance_id() -> str:
    """This process's instance (see the module docstring), with a new token."""
    me = Instance(socket.gethostname(), os.getpid(), secrets.token_hex(4), machine.birth())
    return str(me)


def liveness(
    owner: Instance,
    me: Instance,
    start_time: Callable[[int], int | None] = machine.start_time,
) -> Liveness:
    """Whether ``owner`` (not ``me``) lives, as far as this process can prove it."""
    if owner.birth is None or me.birth is None:
        if owner.host != me.host:
            return Liveness.UNKNOWN
        # An id without a birth: its pid, or ours (a container's pid 1 restarted).
        return Liveness.DEAD if owner.pid == me.pid or not _alive(owner.pid) else Liveness.ALIVE
    was, now = owner.birth, me.birth
    if (was.boot, was.pid_namespace) == (now.boot, now.pid_namespace):
        # Its pid means the same here whatever the host was called: the process is the one
        # that started then, or gone (another with its pid now, or none).
        if (owner.pid, was.start) == (me.pid, now.start):
            return Liveness.DEAD  # this very process, an instance it served before
        started = start_time(owner.pid)
        if started is None:
            # Unreadable: gone, or hidden from us (hidepid); only the first is proof.
            return Liveness.ALIVE if _alive(owner.pid) else Liveness.DEAD
        return Liveness.ALIVE if started == was.start else Liveness.DEAD
    # Another boot, or another pid namespace: another machine as well as this one rebooted
    # (host names repeat: cloned VMs, `localhost`, a compose file's `hostname:`). The state
    # directory's last holder is how a restart here knows (see judged).
    return Liveness.UNKNOWN


def judged(owners: Collection[str], me: str, gone: Collection[str] = ()) -> dict[str, Liveness]:
    """Each of ``owners`` but ``me`` with its :class:`Liveness`. ``gone``: instances known to
    have ended (the state directory's last holder). An owner is also read from other
    processes' environments (``runner.leftovers``), which anyone may write: what names no
    instance is nobody's, and is left out."""
    mine = Instance.parse(me)
    found: dict[str, Liveness] = {}
    for owner in owners:
        if owner == me:
            continue
        instance = Instance.parse(owner)
        if mine is not None and instance is not None:
            state = liveness(instance, mine)
        elif owner in gone:
            state = Liveness.UNKNOWN
        else:
            continue
        # The lock names who held the directory last, not that it stopped: a copied or
        # restored state directory names a crontask that may still run. A process seen alive
        # here is alive whatever the lock says.
        if owner in gone and state is not Liveness.ALIVE:
            state = Liveness.DEAD
        found[owner] = state
    return found


def dead_owners(owners: Collection[str], me: str, gone: Collection[str] = ()) -> set[str]:
    """The owners of ``running`` records that are certainly gone (see :func:`judged`)."""
    return {o for o, state in judged(owners, me, gone).items() if state is Liveness.DEAD}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclasses.dataclass(frozen=True, slots=True)
class Recovery:
    """What :func:`recovery` ended ``interrupted``. ``told``: the runs the caller tells of.
    ``unsaved``: ends of records the store holds ``running``, and ``unclaimed``: ends of runs
    it has no record of (see :func:`_lost_claim`), that the store could not take (unavailable):
    they are to be written when it is back (``Recorder.later``), over and beside what it holds
    (a record that appeared meanwhile stands)."""

    told: list[RunRecord]
    unsaved: list[RunRecord] = dataclasses.field(default_factory=list)
    unclaimed: list[RunRecord] = dataclasses.field(default_factory=list)


def recover(store: RunStore, me: str, now: datetime, *args: Any, **options: Any) -> list[RunRecord]:
    """:func:`recovery`'s ``told``: the runs the caller tells of."""
    return recovery(store, me, now, *args, **options).told


def recovery(
    store: RunStore,
    me: str,
    now: datetime,
    outlives: Callable[[RunRecord], bool] = lambda record: False,
    *,
    grace: float = 10.0,
    scan: Callable[[], dict[leftovers.Leftover, set[int]]] = leftovers.scan,
    gone: Collection[str] = (),
    alone: bool = False,
    tells_of: Collection[str] = (),
) -> Recovery:
    """Mark the runs of dead processes, and those of no owner, ``interrupted`` and return those
    of ``tells_of`` (its predecessor's), oldest first: the runs the caller tells of. The others'
    records say that nobody told of them (``UNTOLD``: the crontask that declares their task
    takes them, ``controller.heartbeat``). Not the runs whose work ``outlives`` its process (a Job's
    run is adopted once the Jobs are watched, see ``controller.jobs``). First the commands of
    such runs still running on this host are stopped (see ``_stop_leftovers``), each session
    given ``grace`` to end on SIGTERM, and so are those of runs whose claim died with ``gone``
    (recorded ``interrupted`` then, see :func:`_lost_claim`). ``gone``: see :func:`judged`.
    ``alone``: no replicas cover for this process (no ``--ha``), so the runs of instances whose
    life it cannot judge are nobody's to end: it says so.

    A store that cannot take writes (a full disk) does not stop this: what it could not take
    is returned to be written later (:class:`Recovery`), the commands stopped all the same. One
    that cannot be read raises ``StoreUnavailable``: without the records nothing here can be
    decided."""
    told_by = set(tells_of)
    lost = _stop_leftovers(store, me, scan(), grace, gone, now)
    running = store.running()
    states = judged({r.owner for r in running if r.owner}, me, gone)
    dead = {o for o, state in states.items() if state is Liveness.DEAD}
    keep = [r.id for r in running if r.owner in dead and outlives(r)]
    later = Recovery(told=[])
    told = dead & told_by
    mine = [r for r in running if r.owner in dead and r.id not in keep]
    to_tell = _marked(store, told, now, keep, "", [r for r in mine if r.owner in told], later)
    untold = [r for r in mine if r.owner not in told]
    marked = [*to_tell, *_marked(store, dead - told, now, keep, UNTOLD, untold, later)]
    marked += _end_ownerless(
        store, [r for r in running if not r.owner and not outlives(r)], now, later
    )
    unrecorded = _claim_lost(store, lost, now, told_by, later)
    to_tell += [r for r in unrecorded if r.owner in told_by]
    marked += unrecorded
    for record in sorted(marked, key=lambda r: (r.scheduled_at, r.id, r.attempt)):
        log.warning(
            "run interrupted: the process died during it",
            extra={"fields": {"task": record.task, "run": record.id}},
        )
    if later.unsaved or later.unclaimed:
        runs = [r.id for r in (*later.unsaved, *later.unclaimed)]
        log.warning(
            "run store unavailable at start; interrupted runs kept to be recorded when it is back",
            extra={"fields": {"runs": len(runs), "first": runs[:20]}},
        )
    unknown = sorted(o for o, state in states.items() if state is Liveness.UNKNOWN)
    if alone and unknown:
        runs = [r.id for r in running if r.owner in unknown]
        log.warning(
            "runs recorded running by another crontask, which may live elsewhere: left to it "
            "until its heartbeat in the run store stops",
            extra={"fields": {"owners": unknown[:10], "runs": len(runs), "first": runs[0]}},
        )
    to_tell.sort(key=lambda r: (r.scheduled_at, r.id, r.attempt))
    return Recovery(to_tell, later.unsaved, later.unclaimed)


def _marked(
    store: RunStore,
    owners: set[str],
    now: datetime,
    keep: list[str],
    note: str,
    records: list[RunRecord],
    later: Recovery,
) -> list[RunRecord]:
    """``store.mark_interrupted``; if the store cannot take it, ``records`` (the owners' runs
    as read) ended as it would have, kept in ``later``."""
    if not owners:
        return []
    try:
        return store.mark_interrupted(owners, now, keep=keep, note=note)
    except StoreUnavailable:
        ends = [interrupted(record, now, note=note) for record in records]
        later.unsaved.extend(ends)
        return ends


def _claim_lost(
    store: RunStore,
    lost: list[RunRecord],
    now: datetime,
    tells_of: set[str],
    later: Recovery,
) -> list[RunRecord]:
    """Record ``interrupted`` the runs whose claim died with their crontask (their commands
    stopped): inserted, never over a record (one that appeared meanwhile stands). So the slot
    is taken, and catch-up does not run it again."""
    ends = []
    for record in lost:
        note = "" if record.owner in tells_of else UNTOLD
        end = interrupted(record, now, note=note)
        message = UNRECORDED_MESSAGE.format(owner=record.owner) + note
        ends.append(dataclasses.replace(end, message=message))
    if not ends:
        return []
    try:
        inserted = store.claim_many(ends)
    except StoreUnavailable:
        later.unclaimed.extend(ends)
        return ends
    return [end for end, ok in zip(ends, inserted, strict=True) if ok]


def _end_ownerless(
    store: RunStore, records: list[RunRecord], now: datetime, later: Recovery
) -> list[RunRecord]:
    """End ``records`` (``running``, with no owner) ``interrupted``, as a crashed run is, but
    for the message, and with the note ``UNTOLD``: the crontask that declares the task tells
    of it. Written over by (id, attempt), not in one statement with the look as an owner's runs
    are: only a crontask from before owners could still end such a record. Those the store
    cannot take (unavailable) are kept in ``later``."""
    ended: list[RunRecord] = []
    for record in records:
        end = interrupted(record, now, note=UNTOLD)
        end = dataclasses.replace(end, message=OWNERLESS_MESSAGE + UNTOLD)
        try:
            store.complete(end)
        except KeyError:  # deleted meanwhile
            continue
        except StoreUnavailable:
            later.unsaved.append(end)
        ended.append(end)
    return ended


def _stop_leftovers(
    store: RunStore,
    me: str,
    found: dict[leftovers.Leftover, set[int]],
    grace: float,
    gone: Collection[str],
    now: datetime,
) -> list[RunRecord]:
    """Stop the commands of runs whose crontask died on this host during them: recorded
    ``running`` still, or already ``interrupted`` for it (by another replica, which cannot
    reach this host's processes). A run that ended, or was stopped at shutdown, keeps what it
    left on purpose (a daemon in a session of its own), as it would have while its crontask
    lived. So are those of runs the store has no record of whose claim died with the state
    directory's last holder (:func:`_lost_claim`); returned, to be recorded ``interrupted``."""
    dead = dead_owners({left.instance for left in found}, me, gone)
    sessions: set[int] = set()
    lost: list[RunRecord] = []
    for left, sids in sorted(found.items(), key=lambda item: item[0].run_id):
        if left.instance not in dead:
            continue
        record = store.get(left.run_id, left.attempt)
        if record is None:
            record = _lost_claim(store, left, gone, now)
            if record is None:
                continue
            lost.append(record)
        elif record.owner != left.instance or not _cut_short(record):
            continue
        log.warning(
            "stopping a command its dead crontask left running",
            extra={"fields": {"task": record.task, "run": record.id, "sessions": sorted(sids)}},
        )
        sessions |= sids
    killed = leftovers.stop(sessions, grace) if sessions else set()
    if killed:
        log.warning(
            "left-over commands killed: they outlived the grace",
            extra={"fields": {"sessions": sorted(killed), "grace_s": grace}},
        )
    return lost


def _lost_claim(
    store: RunStore, left: leftovers.Leftover, gone: Collection[str], now: datetime
) -> RunRecord | None:
    """The run ``left`` belongs to, as its claim would have recorded it, if that claim died
    with its crontask: the store could not take it (a full disk, README: its records wait in
    memory) and the crontask was then killed. Catch-up counts slots from the store, so the
    slot would run again beside this command. None where the missing record says nothing, or
    where a wrong guess would cost more than the case it is for (a daemon killed, a slot
    taken that must run):

    - its crontask is not the state directory's last holder (``gone``): only the crontask
      that died last held records in memory; an older one's run was judged at its restart;
    - the run id is no task's slot (anyone may set an environment, a command among them);
    - not a first scheduled attempt: catch-up never repeats a manual run or a retry, so a
      lost one costs no second run, while its record may have been pruned (a daemon left
      on purpose);
    - a slot not due yet: a command could name another task's future slot and take it;
    - not newer than the task's newest stored slot that ran: its record was pruned since
      (retention keeps each task's newest slot), and its run left this process on purpose, as
      it would with its crontask alive. Not a skipped slot's, nor another task's: when the
      store came back, their records went in at once (a Forbid skip of the next slot, beside
      this very command) while this claim waited for the flush;
    - no slot of the task that ran stored (among its newest records): a new or replaced
      store, or a task removed and its runs pruned since, which says nothing of the crontask
      that died.
    """
    slot = _slot(left.run_id)
    if left.instance not in gone or slot is None or left.attempt != 1:
        return None
    task, at = slot
    if at.microsecond or at > now:
        return None
    newest = _newest_ran(store, task)
    if newest is None or newest >= at:
        return None
    return RunRecord(
        left.run_id, task, at, Trigger.SCHEDULE, RunStatus.RUNNING, owner=left.instance
    )


def _newest_ran(store: RunStore, task: str) -> datetime | None:
    """The newest slot of ``task`` the store holds a scheduled run of that was not skipped,
    among its newest records (a page: skips in a row past it say nothing)."""
    for record in store.query(RunQuery(task=task, limit=_NEWEST_READ)).items:
        if record.trigger is not Trigger.MANUAL and record.status is not RunStatus.SKIPPED:
            return record.scheduled_at
    return None


def _slot(run: str) -> tuple[str, datetime] | None:
    """The task and slot of a run id (``core.runs.run_id``), None if it is no run's."""
    namespace, _, rest = run.partition(".")
    name, _, stamp = rest.partition(".")
    labels = (namespace, name)
    if not stamp.endswith("Z") or not all(re.fullmatch(DNS1123_LABEL, x) for x in labels):
        return None
    for pattern in ("%Y%m%dT%H%M%S", "%Y%m%dT%H%M%S.%f"):
        try:
            at = datetime.strptime(stamp[:-1], pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
        task = f"{namespace}/{name}"
        try:
            # Only the id crontask gives that slot (strptime takes "1" for "01").
            return (task, at) if run_id(task, at) == run else None
        except ValueError:
            return None
    return None


def _cut_short(record: RunRecord) -> bool:
    return record.status is RunStatus.RUNNING or died(record)
