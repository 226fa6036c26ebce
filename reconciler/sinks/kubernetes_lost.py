"""A CronTask's stored ``lastRun`` that says ``running`` of a run the run store does not hold.

Contract:

- :func:`lost_run` is the record a status shows for such a run: ``interrupted``, ended when it
  was found missing, with the stored ``lastRun``'s id and start, and a message that says why
  (:data:`LOST_MESSAGE`). It is shown, never stored, and counts as no failure: its outcome
  is unknown (the run may have succeeded), so ``lastFailureTime`` and the failure metrics are
  not moved by it, and no ``RunFailed`` Event is sent.
- It is asked for only once the store has answered that it holds no such run and no record
  waits here for the store (see ``controller.kube``): a store that did not answer, or a record
  not written yet, is no proof that the run is gone.
- Only for a ``lastRun`` without ``job`` (a command or http task: its run went with its
  crontask): a Job outlives its crontask, and may still run or have succeeded since; such a
  ``lastRun`` is left as it is (until the task's next run). And only when crontask runs without
  replicas (no ``--ha``): with them, another replica's run may be kept in its memory while it
  is cut off from the shared store, and the store's answer would be no proof either (the
  reporter is told, ``lost_runs``).
- Shown without ``durationMs`` (:func:`without_duration`): its ``completionTime`` is when it
  was found missing, and the time until then is no run's duration.
- :class:`Told` says the runs shown so in one warning line per batch of reads (a pass's):
  their count and the first :data:`TOLD_KEYS` keys, not a line per object (a thousand stale
  objects after a lost store would give a thousand).

The crontask that ran it died during it and its run store went with it (a new pod's
``emptyDir``, a fresh ``--state-dir``), or it died before its record reached the store: no
``recover`` can mark it ``interrupted``, as it does the runs a store still holds, so without this
the object would say ``running`` until the task's next run (a day, for a nightly task).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from reconciler.core.runs import RunRecord, RunStatus, Trigger
from reconciler.core.status import parse_time

log = logging.getLogger("crontask.sinks")

# The keys a "shown interrupted" line names, at most (the count says how many there were).
TOLD_KEYS = 5
LOST_MESSAGE = (
    "not in this run store (it was replaced, as a new pod's emptyDir is, or its crontask died"
    " before writing the run): its outcome is unknown"
)


def lost_run(key: str, last: Mapping[str, Any], now: datetime) -> RunRecord | None:
    """The record shown for the stored ``lastRun`` ``last`` of the task ``key``, whose run no
    store holds; None if ``last`` says no running run, or names a Job (it may still run)."""
    run_id = last.get("id")
    if not isinstance(run_id, str) or last.get("result") != str(RunStatus.RUNNING):
        return None
    if last.get("job") is not None:
        return None
    started = parse_time(last.get("startTime"))
    return RunRecord(
        id=run_id,
        task=key,
        # Not known (a run id's slot is not read back from it): only the status reads this
        # record, and it shows no slot.
        scheduled_at=started or now,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.INTERRUPTED,
        started_at=started,
        finished_at=now,
        message=LOST_MESSAGE,
    )


def is_lost(record: RunRecord | None) -> bool:
    return record is not None and record.message == LOST_MESSAGE


def without_duration(status: dict[str, Any]) -> dict[str, Any]:
    """``status`` with no ``durationMs`` in its lost ``lastRun``."""
    last = status.get("lastRun")
    if isinstance(last, dict):
        last.pop("durationMs", None)
    return status


class Told:
    """The keys whose lost run was shown since the last line said them."""

    def __init__(self) -> None:
        self._keys: list[str] = []

    def add(self, key: str) -> None:
        self._keys.append(key)

    def say(self) -> None:
        """One line for all of them (at the end of a batch of reads)."""
        if not self._keys:
            return
        keys, self._keys = self._keys, []
        log.warning(
            "status: runs their lastRun says are running are not in the run store; shown"
            " interrupted",
            extra={"fields": {"count": len(keys), "tasks": ",".join(keys[:TOLD_KEYS])}},
        )
