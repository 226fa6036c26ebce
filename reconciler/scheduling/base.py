"""The contract of a scheduler that crontask drives."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Protocol

from reconciler.core.desired import Definition
from reconciler.core.plan import Step
from reconciler.core.schedule import Schedule, jitter_offset, parse_schedule

# Called on the event loop when a task's slot comes: (task key, the slot's instant). It must
# return quickly: it hands the run over, it does not run it.
FireCallback = Callable[[str, datetime], None]


class Scheduler(Protocol):
    """Keeps one job per task it owns and calls the fire callback at each slot.

    ``apply`` performs one plan step (add, update or remove) and never touches entries it does
    not own. A suspended task keeps its entry but fires no slot. ``owned`` returns the
    definitions currently applied, by task key: this is the planner's ``actual``.
    ``next_fire_time`` is None for unknown or suspended tasks.
    """

    def start(self) -> None: ...

    def shutdown(self) -> None: ...

    def apply(self, step: Step) -> None: ...

    def owned(self) -> Mapping[str, Definition]: ...

    def next_fire_time(self, key: str) -> datetime | None: ...


def schedule_of(definition: Definition) -> Schedule:
    """The fire-time schedule of a definition, jitter included."""
    spec = definition.task.spec
    schedule = parse_schedule(spec.schedule, spec.time_zone)
    jitter = getattr(spec, "jitter_seconds", None)
    if jitter:
        schedule = schedule.with_offset(jitter_offset(definition.key, jitter))
    return schedule
