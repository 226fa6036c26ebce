"""Who this process is, and the runs a dead one left ``running``."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable, Collection
from datetime import datetime

from reconciler.core.runs import RunRecord, RunStatus
from reconciler.runner import leftovers
from reconciler.store.base import INTERRUPTED_REASON, RunStore

log = logging.getLogger("crontask")


def instance_id() -> str:
    """``host:pid:token``; the token tells this process from an earlier one with the same pid
    (a restarted container is pid 1 every time)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def dead_owners(owners: Collection[str], me: str) -> set[str]:
    """The owners of ``running`` records that are certainly gone: on this host, and either
    their pid is not alive or it is ours (an earlier incarnation of this process). Records of
    other hosts are left alone: only their own instance can know."""
    host, pid, _ = me.split(":")
    dead: set[str] = set()
    for owner in owners:
        parts = owner.split(":")
        # An owner is also read from other processes' environments (runner.leftovers), which
        # anyone may write: what is no pid of this host is nobody's.
        if len(parts) != 3 or parts[0] != host or owner == me:
            continue
        if not (parts[1].isascii() and parts[1].isdigit() and 0 < len(parts[1]) <= 9):
            continue
        if parts[1] == pid or not _alive(int(parts[1])):
            dead.add(owner)
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(
    store: RunStore,
    me: str,
    now: datetime,
    outlives: Callable[[RunRecord], bool] = lambda record: False,
    *,
    grace: float = 10.0,
    scan: Callable[[], dict[leftovers.Leftover, set[int]]] = leftovers.scan,
) -> int:
    """Mark the runs of dead processes ``interrupted``; not those whose work ``outlives`` its
    process (a Job's run is adopted once the Jobs are watched, see ``controller.jobs``). First
    the commands of such runs still running on this host are stopped (see ``_stop_leftovers``),
    each session given ``grace`` to end on SIGTERM."""
    _stop_leftovers(store, me, scan(), grace)
    running = store.running()
    dead = dead_owners({r.owner for r in running if r.owner}, me)
    keep = [r.id for r in running if r.owner in dead and outlives(r)]
    interrupted = store.mark_interrupted(dead, now, keep=keep)
    for record in interrupted:
        log.warning(
            "run interrupted: the process died during it",
            extra={"fields": {"task": record.task, "run": record.id}},
        )
    return len(interrupted)


def _stop_leftovers(
    store: RunStore, me: str, found: dict[leftovers.Leftover, set[int]], grace: float
) -> None:
    """Stop the commands of runs whose crontask died on this host during them: recorded
    ``running`` still, or already ``interrupted`` for it (by another replica, which cannot
    reach this host's processes). A run that ended, or was stopped at shutdown, keeps what it
    left on purpose (a daemon in a session of its own), as it would have while its crontask
    lived."""
    dead = dead_owners({left.instance for left in found}, me)
    sessions: set[int] = set()
    for left, sids in sorted(found.items(), key=lambda item: item[0].run_id):
        if left.instance not in dead:
            continue
        record = store.get(left.run_id, left.attempt)
        if record is None or record.owner != left.instance or not _cut_short(record):
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


def _cut_short(record: RunRecord) -> bool:
    return record.status is RunStatus.RUNNING or (
        record.status is RunStatus.INTERRUPTED and record.reason == INTERRUPTED_REASON
    )
