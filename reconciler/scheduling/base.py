"""The contract of a scheduler that crontask drives."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import NamedTuple, Protocol

from reconciler.core.desired import Definition
from reconciler.core.plan import Step
from reconciler.core.schedule import Schedule, jitter_offset, parse_schedule

# Called on the event loop when a task's slot comes: (task key, the slot's instant). It must
# return quickly: it hands the run over, it does not run it.
FireCallback = Callable[[str, datetime], None]


class Scheduled(NamedTuple):
    """One owned task as the scheduler holds it (see :meth:`Scheduler.snapshot`)."""

    definition: Definition
    next_fire: datetime | None  # None: suspended, not started yet, or no further slot
    # Seconds from the slot handed off last to the next one; before the first hand-off since
    # the task was applied, from the next slot to the one after. None without a next slot.
    interval: float | None


class Scheduler(Protocol):
    """Keeps one job per task it owns and calls the fire callback at each slot.

    ``apply`` performs one plan step (add, update or remove) and never touches entries it does
    not own. A suspended task keeps its entry but fires no slot. ``owned`` returns the
    definitions currently applied, by task key: this is the planner's ``actual``.
    ``next_fire_time`` is None for unknown or suspended tasks.

    ``snapshot`` holds every task owned at one instant, each with its next slot and current
    interval (as they are when the entry is read), for readers on other threads (the metrics
    collector at each scrape): it is the one method that may be called from any thread, it is
    cheap (a copy under a lock held for a dict copy; no slot arithmetic but, once per task
    applied, the interval before its first slot), and it reads the fire times the scheduler
    already holds rather than computing them anew.
    """

    def start(self) -> None: ...

    def shutdown(self) -> None: ...

    def apply(self, step: Step) -> None: ...

    def owned(self) -> Mapping[str, Definition]: ...

    def next_fire_time(self, key: str) -> datetime | None: ...

    def snapshot(self) -> Mapping[str, Scheduled]: ...


def schedule_of(definition: Definition) -> Schedule:
    """The fire-time schedule of a definition, jitter included."""
    spec = definition.task.spec
    schedule = parse_schedule(spec.schedule, spec.time_zone)
    jitter = getattr(spec, "jitter_seconds", None)
    if jitter:
        schedule = schedule.with_offset(jitter_offset(definition.key, jitter))
    return schedule
