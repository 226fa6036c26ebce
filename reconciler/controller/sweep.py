"""What a renewal looks at in the run store (``--ha``): the running runs of replicas gone, the
runs here that another replica asked to stop, and the tasks of ours running elsewhere.

Running records whose owner is no live member (a ``kill -9``, a lost node) are marked
``interrupted``, but not those of a crontask without ``--ha`` that shares the store and beats
instead of renewing a membership (the heartbeat judges it, ``controller.heartbeat``), nor those
whose work ``outlives`` the replica (a Kubernetes Job: the task's new owner adopts the run).
Replicas tell of no crashed run (``Notifier.crashes_told``): the record says so, and says what is
known (``GONE``): not that the process exited; a replica stopped by SIGSTOP, or cut off, may still
be running the command.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Final

from reconciler.core.runs import UNTOLD, RunRecord
from reconciler.store.base import RunStore

log = logging.getLogger("crontask.cluster")

# Follows ``store.base.INTERRUPTED_MESSAGE`` in the record of a run whose replica is gone.
GONE: Final = (
    "; its replica stopped renewing its membership until its lease ran out "
    "(it died, was stopped, or was cut off)"
)


@dataclasses.dataclass(frozen=True, slots=True)
class Swept:
    stops: list[tuple[str, str]]  # runs here another replica asked to stop, with the reason
    foreign: set[str]  # tasks of ours another replica runs now: their next run asks the store


def interrupt_gone(
    store: RunStore,
    me: str,
    live: Collection[str],
    gone: Collection[str] | None,
    *,
    outlives: Callable[[RunRecord], bool],
) -> None:
    """Blocking. Marks the runs of the owners ``gone`` that are no live member (of every owner
    that is no live member if None) interrupted. Called before the tasks of those owners are
    taken (``Cluster._follow``): the catch-up of a task that comes here is claimed at once, and
    a gone owner's run still ``running`` would have it skipped under Forbid."""
    if gone is not None and not gone:
        return  # on most renewals: no query
    running = store.running()
    owners = {r.owner for r in running if r.owner} - set(live) - {me}
    if gone is not None:
        owners &= set(gone)
    if not owners:
        return
    dead = owners - set(store.beats())
    keep = [r.id for r in running if r.owner in dead and outlives(r)]
    now = datetime.now(UTC)
    for record in store.mark_interrupted(dead, now, keep=keep, note=GONE + UNTOLD):
        log.warning(
            "run interrupted: its replica is gone",
            extra={"fields": {"task": record.task, "run": record.id, "owner": record.owner}},
        )


def sweep(
    store: RunStore, me: str, here: Collection[tuple[str, int]], *, mine: Callable[[str], bool]
) -> Swept:
    """Blocking. The runs here (``here``: the attempts going on, ``(run id, attempt)``) another
    replica asked to stop, and the tasks of ours (``mine``, as assigned now) that another
    replica runs."""
    # Those going on here whatever their records say: one asked to stop (a Replace elsewhere)
    # while this replica was frozen past its lease was marked interrupted since, and the
    # replica that asked runs its own now; this one's must stop, not run beside it.
    stops = [(run, reason) for run, _, reason in store.stop_requests(me, here)]
    # A manual run asked there, or a run from before a handover.
    foreign = {r.task for r in store.running() if r.owner != me and mine(r.task)}
    return Swept(stops, foreign)
