"""The periods that ran already, when a changed job's first slot may belong to one of them.

A new ``jitterSeconds`` moves the task's last slot with the new offset
(``reconcile.account_for_slots``): the slot of the period that ran, 13:00:00, is 13:00:09 with
an offset of 9 s. But the changed job's first slot is its first after *now*: an edit at 13:00:02
(or in the lead before 13:00:00, once that slot was handed over) makes it that same 13:00:09,
and the period would run twice. So when the moved last slot lies after where the changed job
takes over, the changed job's first slot is dropped if it is no later than it: it is the period
that ran.
"""

from __future__ import annotations

import logging
from datetime import datetime

from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id

log = logging.getLogger("crontask.runner")


class RanPeriods:
    def __init__(self) -> None:
        # By task: the last slot of a changed task, as the change moved it, when it lies after
        # where the changed job takes over.
        self._through: dict[str, datetime] = {}

    def changed(self, key: str, last: datetime | None, until: datetime) -> None:
        """The task of ``key`` changed while crontask runs: ``last`` is its last slot as the
        change moved it, and the changed job takes over after ``until``."""
        if last is not None and last > until:
            self._through[key] = last
        else:
            self._through.pop(key, None)

    def ran(self, key: str, slot: datetime) -> bool:
        """Whether the scheduled ``slot`` of ``key``, the changed job's first, falls in the
        period that ran (it is not run, and it is logged). Only that first slot is looked at:
        a new offset may be longer than the schedule's period, and the slots after the first
        are new periods whatever the moved last slot says."""
        through = self._through.pop(key, None)
        if through is None or slot > through:
            return False
        log.info(
            "slot not run: its period ran already, before the task changed",
            extra={"fields": {"task": key, "slot": slot.isoformat(), "last": through.isoformat()}},
        )
        return True

    def forget(self, key: str) -> None:
        self._through.pop(key, None)


def not_run(key: str, slot: datetime, owner: str, now: datetime) -> RunRecord:
    """What ``Dispatcher.fire`` answers for a slot whose period ran: no record is written (the
    period's run has its own), as none is for a slot not started (``_not_started``)."""
    return RunRecord(
        id=run_id(key, slot),
        task=key,
        scheduled_at=slot,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.SKIPPED,
        finished_at=now,
        reason="PeriodRan",
        message="the period of this slot ran already, before the task changed",
        owner=owner,
    )
