"""The periods that ran already, when a changed job's slots may belong to them.

A new ``jitterSeconds`` moves the task's last slot with the new offset
(``reconcile.account_for_slots``): the slot of the period that ran, 13:00:00, is 13:00:09 with
an offset of 9 s. But the changed job's first slot is its first after *now*: an edit at 13:00:02
(or in the lead before 13:00:00, once that slot was handed over) makes it that same 13:00:09,
and the period would run twice.

The rule: the changed job's slots up to the moved last slot are not run. A slot is its
period's base plus the offset, so a slot of the new offset no later than the moved last slot
(the base that ran plus that offset) has a base no later than the one that ran: a period
handled before the change (it ran, or it came before crontask counted the task's slots).
When the offset grows by more than the schedule's interval, that is several slots, not one
(``*/5`` seconds that ran 13:00:00, given an offset of 13 s at 13:00:00.5: 13:00:03, :08 and
:13 are the periods of 12:59:50, :55 and 13:00:00); each is recorded ``skipped``, reason
``PeriodRan``, and the first slot after the moved one (13:00:18, the period of 13:00:05) and
all later ones run. The same comparison holds for a new schedule edited with the offset: its
slots whose base is not after the last one that ran are not run.

The offset shrinking moves the last slot back, behind where the changed job takes over:
nothing is guarded. By more than the interval, the latest of the changed job's slots between
the moved last slot and the edit runs as the catch-up (``Dispatcher.catch_up``); the others
leave no record, as the older slots of a new schedule do not (telling those of periods that
had not run from slots that ran, at the same instants on a schedule of whole seconds or
minutes, needs the old schedule: not done).
"""

from __future__ import annotations

from datetime import UTC, datetime

from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id


class RanPeriods:
    def __init__(self) -> None:
        # By task: the last slot of a changed task, as the change moved it, when it lies after
        # where the changed job takes over; kept until the changed job's slots pass it.
        self._through: dict[str, datetime] = {}

    def changed(self, key: str, last: datetime | None, until: datetime) -> None:
        """The task of ``key`` changed while crontask runs: ``last`` is its last slot as the
        change moved it, and the changed job takes over after ``until``."""
        if last is not None and last > until:
            self._through[key] = last
        else:
            self._through.pop(key, None)

    def ran(self, key: str, slot: datetime) -> datetime | None:
        """The moved last slot if the scheduled ``slot`` of ``key`` is no later: its period was
        handled before the change, and the slot is not run. The first slot after it is a new
        period, and so is every later one: the guard ends there."""
        through = self._through.get(key)
        if through is None:
            return None
        if slot > through:
            del self._through[key]
            return None
        return through

    def forget(self, key: str) -> None:
        self._through.pop(key, None)


def not_run(key: str, slot: datetime, owner: str, now: datetime) -> RunRecord:
    """The record ``Dispatcher.fire`` decides for a slot whose period ran, to be recorded
    skipped (``SlotSkips._skip``: ``now`` becomes its end)."""
    return RunRecord(
        id=run_id(key, slot),
        task=key,
        scheduled_at=slot,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.RUNNING,
        started_at=now,
        owner=owner,
    )


def not_run_message(through: datetime) -> str:
    """Why a slot up to ``through`` (the moved last slot) is not run."""
    at = through.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return (
        "its period ran already, before the task changed: a new jitterSeconds moved the "
        f"task's last slot to {at}, and no slot up to it runs (each is a period that ran, or "
        "that came before crontask counted the task's slots)"
    )
