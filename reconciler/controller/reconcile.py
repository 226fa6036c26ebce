"""One reconcile pass, level-triggered.

A pass re-reads what may have changed, assembles the desired state from every source, plans
against what the scheduler holds, and applies the plan. Running it twice changes nothing. The
result says what happened; the caller decides about logs and the next pass.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta

from reconciler.controller.dispatch import Dispatcher
from reconciler.core.desired import DesiredState, assemble, reassemble
from reconciler.core.plan import Operation, Plan, plan
from reconciler.scheduling.base import Scheduler
from reconciler.sources.base import Source

log = logging.getLogger("crontask.controller")

_VERB = {
    Operation.ADD: "task added",
    Operation.UPDATE: "task updated",
    Operation.REMOVE: "task removed",
}


@dataclasses.dataclass(frozen=True, slots=True)
class PassResult:
    plan: Plan
    desired: DesiredState
    seconds: float


class Reconciler:
    def __init__(
        self, sources: Sequence[Source], scheduler: Scheduler, *, allow_empty: bool = False
    ) -> None:
        self.sources = list(sources)
        self.scheduler = scheduler
        self.allow_empty = allow_empty
        self.desired = DesiredState(tasks={})
        self._reported: set[str] = set()

    def refresh(self, hints: Mapping[str, Collection[str]] | None = None) -> set[str] | None:
        """Re-read sources. ``hints`` maps a source kind to the paths an event named; None
        re-reads everything (resync). Returns the keys that may have changed, or None for
        "compare everything". Blocking I/O: may run in a thread."""
        changed: set[str] = set()
        for source in self.sources:
            if hints is None:
                changed |= source.refresh(None)
            elif source.kind in hints:
                changed |= source.refresh(hints[source.kind])
        errors = (e for s in self.sources for e in s.errors())
        if hints is None:
            self.desired = assemble((d for s in self.sources for d in s.definitions()), errors)
            return None
        # An event touches a few keys: re-settle only those, so that an edit costs the same
        # at 10 000 tasks as at 100.
        self.desired = reassemble(
            self.desired,
            changed,
            (d for s in self.sources for d in s.definitions_of(changed)),
            errors,
        )
        return changed

    def apply(self, keys: Collection[str] | None, started: float) -> PassResult:
        """Plan against the scheduler and apply. Runs on the scheduler's event loop."""
        result = plan(
            self.desired.tasks, self.scheduler.owned(), keys=keys, allow_empty=self.allow_empty
        )
        for step in result.steps:
            self.scheduler.apply(step)
            fields: dict[str, object] = {"task": step.key, "reason": step.reason}
            if step.operation is Operation.UPDATE:
                fields["changed"] = ", ".join(c.path for c in step.field_changes())
            log.info(_VERB[step.operation], extra={"fields": fields})
        if result.held_removals:
            log.warning(
                "every source is empty; keeping the running tasks (use --allow-empty to remove)",
                extra={"fields": {"held": len(result.held_removals)}},
            )
        self._report_problems()
        return PassResult(result, self.desired, time.monotonic() - started)

    def _report_problems(self) -> None:
        # Each problem is logged when it appears and when it is fixed, not on every pass.
        current = set(self.desired.problems)
        for problem in sorted(current - self._reported):
            log.error("definition error", extra={"fields": {"error": problem}})
        for problem in sorted(self._reported - current):
            log.info("definition error resolved", extra={"fields": {"error": problem}})
        self._reported = current


_EPSILON = timedelta(microseconds=1)


def account_for_slots(
    plan: Plan,
    scheduler: Scheduler,
    dispatcher: Dispatcher,
    now: datetime,
    anchors: Mapping[str, datetime] | None = None,
) -> None:
    """Tell the dispatcher what a pass changed, so that every slot is accounted for.

    Removed tasks are forgotten. At start-up (``anchors``: each task's last recorded slot) and
    when a task is resumed, it catches up on the slots it missed, up to just before the
    scheduler's first fire, so that no slot is handled by both or by neither. Any other added
    or changed task counts skipped slots from ``now`` on.
    """
    for step in plan.steps:
        if step.desired is None:
            dispatcher.forget(step.key)
            continue
        following = scheduler.next_fire_time(step.key)
        until = min(now, following - _EPSILON) if following else now
        was_suspended = step.current is not None and step.current.task.spec.suspend
        if anchors is not None:
            dispatcher.catch_up(step.desired, anchors.get(step.key), until)
        elif was_suspended and not step.desired.task.spec.suspend:
            dispatcher.catch_up(
                step.desired, dispatcher.last_slot(step.key), until, record_superseded=False
            )
        else:
            dispatcher.track(step.key, now)
