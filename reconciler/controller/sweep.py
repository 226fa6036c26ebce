"""What a renewal looks at in the run store (``--ha``): the running runs of replicas gone, the
runs here that another replica asked to stop, and the tasks of ours running elsewhere.

Running records whose owner is no live member (a ``kill -9``, a lost node) are marked
``interrupted``, but not those of a crontask without ``--ha`` that shares the store and beats
instead of renewing a membership (the heartbeat judges it, ``controller.heartbeat``), nor those
whose work ``outlives`` the replica (a Kubernetes Job: the task's new owner adopts the run).
Replicas tell of no crashed run (``Notifier.crashes_told``): the record says so.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection
from datetime import UTC, datetime

from reconciler.core.runs import UNTOLD, RunRecord
from reconciler.store.base import RunStore

log = logging.getLogger("crontask.cluster")


@dataclasses.dataclass(frozen=True, slots=True)
class Swept:
    stops: list[tuple[str, str]]  # runs here another replica asked to stop, with the reason
    foreign: set[str]  # tasks of ours another replica runs now: their next run asks the store


def sweep(
    store: RunStore,
    me: str,
    live: Collection[str],
    gone: Collection[str] | None,
    *,
    mine: Callable[[str], bool],
    outlives: Callable[[RunRecord], bool],
) -> Swept:
    """Blocking. Marks the runs of the owners ``gone`` that are no live member (of every owner
    that is no live member if None) interrupted."""
    stops = [(run, reason) for run, _, reason in store.stop_requests(me)]
    running = store.running()
    # A manual run asked there, or a run from before a handover.
    foreign = {r.task for r in running if r.owner != me and mine(r.task)}
    owners = {r.owner for r in running if r.owner} - set(live) - {me}
    if gone is not None:
        owners &= set(gone)
    if owners:  # on most renewals none: no more queries
        dead = owners - set(store.beats())
        keep = [r.id for r in running if r.owner in dead and outlives(r)]
        for record in store.mark_interrupted(dead, datetime.now(UTC), keep=keep, note=UNTOLD):
            log.warning(
                "run interrupted: its replica is gone",
                extra={"fields": {"task": record.task, "run": record.id, "owner": record.owner}},
            )
    return Swept(stops, foreign)
