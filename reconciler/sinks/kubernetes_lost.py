"""A CronTask's stored ``lastRun`` that says ``running`` of a run the run store does not hold.

Contract:

- :func:`lost_run` is the record a status shows for such a run: ``interrupted``, ended when it
  was found missing, with the stored ``lastRun``'s id, start and Job, and a message that says
  why (:data:`LOST_MESSAGE`). It is shown, never stored, and counts as no failure: its outcome
  is unknown (the run may have succeeded), so ``lastFailureTime`` and the failure metrics are
  not moved by it, and no ``RunFailed`` Event is sent.
- It is asked for only once the store has answered that it holds no such run and no record
  waits here for the store (see ``controller.kube``): a store that did not answer, or a record
  not written yet, is no proof that the run is gone. With ``--ha`` the store is shared, so
  another replica's run has a record there and is never taken for lost.

The crontask that ran it died during it and its run store went with it (a new pod's
``emptyDir``, a fresh ``--state-dir``), or it died before its record reached the store: no
``recover`` can mark it ``interrupted``, as it does the runs a store still holds, so without this
the object would say ``running`` until the task's next run (a day, for a nightly task).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from reconciler.core.runs import JobDetails, RunRecord, RunStatus, Trigger
from reconciler.core.status import parse_time

LOST_MESSAGE = (
    "not in this run store (it was replaced, as a new pod's emptyDir is, or its crontask died"
    " before writing the run): its outcome is unknown"
)


def lost_run(key: str, last: Mapping[str, Any], now: datetime) -> RunRecord | None:
    """The record shown for the stored ``lastRun`` ``last`` of the task ``key``, whose run no
    store holds; None if ``last`` says no running run."""
    run_id = last.get("id")
    if not isinstance(run_id, str) or last.get("result") != str(RunStatus.RUNNING):
        return None
    started = parse_time(last.get("startTime"))
    job = last.get("job")
    details = None
    if isinstance(job, Mapping) and isinstance(job.get("name"), str):
        uid = job.get("uid")
        details = JobDetails(
            key.partition("/")[0], job["name"], uid if isinstance(uid, str) else None
        )
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
        job=details,
    )
