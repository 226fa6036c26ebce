"""How one attempt of a ``job`` task ends (``runner.job_attempt``, step 4, and its stops).

Before anything can clean the Job up, its evidence is kept (:func:`evidence`): the pod that tells
the story (``core.job_pods``), each container's exit code and reason, and the last
``output_limit`` bytes of the main container's log, or why it could not be read. Then the
outcome:

- the Job's own (:func:`conclude`); a resumed run's says when the Job ended (:class:`JobEnd`);
- a stop's (:func:`stopping`): at shutdown the attempt detaches (the Job runs on, the record
  stays ``running`` and names it); any other stop deletes the Job and fails the attempt;
- the ``timeoutSeconds`` backstop's (:func:`overdue`): the Job is deleted and the attempt is
  ``timedOut`` (:data:`DEADLINE_EXCEEDED`), unless the cluster had decided its outcome.

A delete is ``runner.job_delete``'s, which tries again in the background if it must.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING

from reconciler.core.job_pods import story_pod
from reconciler.core.jobs import decided, main_container, outcome_of, with_pod
from reconciler.core.runs import RunStatus
from reconciler.core.status import parse_time
from reconciler.runner.base import Outcome
from reconciler.runner.job_create import SHUTDOWN
from reconciler.runner.job_delete import delete_job

if TYPE_CHECKING:
    from reconciler.runner.job_attempt import Job, JobRun

DEADLINE_EXCEEDED = "DeadlineExceeded"


def job_uid(job: Job | None) -> str | None:
    return None if job is None else (job.get("metadata") or {}).get("uid")


def _story(job: Job, pods: list[Job]) -> Job | None:
    """The pod that tells the story of ``job`` (``core.job_pods``: by the outcome the cluster
    decided, not by age alone: a parallel Job's pods are made in the same second)."""
    ended = decided(job)
    pod = story_pod(pods, *((None, None) if ended is None else ended[:2]))
    return None if pod is None else dict(pod)


@dataclasses.dataclass(frozen=True, slots=True)
class JobEnd(Outcome):
    """The outcome of a resumed run: ``ended_at`` is when its Job ended, by the Job's own
    account (``completionTime``, else its terminal condition's ``lastTransitionTime``, else its
    decided one's; None if it says none), on the API server's clock: it may have ended while no
    crontask ran."""

    ended_at: datetime | None = None


def _ended_at(job: Job) -> datetime | None:
    status = job.get("status") or {}
    if (completed := parse_time(status.get("completionTime"))) is not None:
        return completed
    conditions = [c for c in status.get("conditions") or () if c.get("status") == "True"]
    for kinds in (("Complete", "Failed"), ("SuccessCriteriaMet", "FailureTarget")):
        for condition in conditions:
            if condition.get("type") in kinds:
                return parse_time(condition.get("lastTransitionTime"))
    return None


async def stopping(run: JobRun, reason: str) -> Outcome:
    details = run.details()
    if reason == SHUTDOWN:
        return Outcome(
            RunStatus.RUNNING,
            None,
            reason,
            f"crontask stopped; Job {details.name} runs on and is adopted at the next start",
            "",
            job=details,
        )
    cluster = run.runner.cluster
    output, pod, error = await evidence(run, cluster.cached(details.namespace, details.name))
    details = with_pod(details, pod, error)
    deleted = await _delete(run)
    if isinstance(deleted, str):
        what = f"could not be deleted yet ({deleted}); crontask tries again until it is"
    else:
        what = "deleted" if deleted else "was gone already"
    message = f"stopped: {reason}; Job {details.name} {what}"
    return Outcome(RunStatus.FAILED, None, reason, message, output, job=details)


async def overdue(run: JobRun, job: Job) -> Outcome:
    """The backstop: the cluster has not ended the Job in time (a suspended Job, one
    another controller manages, a Job controller that is down, pods stuck terminating):
    keep its log, delete it (Background, its uid as precondition, as for ``Replace``), and
    time the attempt out; unless the cluster had decided its outcome (``job``, as last
    seen): then that outcome is the attempt's (the work ended; only its pods did not go)."""
    cluster, details = run.runner.cluster, run.details()
    cached = cluster.cached(details.namespace, details.name)
    if cached is not None and job_uid(cached) == run.uid and decided(cached) is not None:
        job = cached  # decided since the look (a look by GET may be behind the watch)
    output, pod, error = await evidence(run, cached, job)
    details = with_pod(details, pod, error)
    deleted = await _delete(run)
    if isinstance(deleted, str):
        done = f" could not delete it yet ({deleted}) and tries again until it can"
    else:
        done = " deleted it" if deleted else " found it gone already"
    if decided(job) is not None:
        ended = outcome_of(job, pod, main=main_container(job), log_error=error)
        message = (
            f"{ended.message}; its pods had not all terminated within timeoutSeconds "
            f"({run.timeout:g}s), {run.runner.deadline_margin:g}s and their grace after "
            f"its creation: crontask{done}"
        )
        said = (ended.status, ended.exit_code, ended.reason, message, output)
        return Outcome(*said, job=ended.details)
    message = (
        f"Job {details.name} did not finish within timeoutSeconds ({run.timeout:g}s) and "
        f"{run.runner.deadline_margin:g}s more after its creation; crontask{done}"
    )
    return Outcome(RunStatus.TIMED_OUT, None, DEADLINE_EXCEEDED, message, output, job=details)


async def _delete(run: JobRun) -> bool | str:
    """Delete the Job (``runner.job_delete``, which tries again if it must)."""
    return await delete_job(run.runner, run.where, run.uid, run.record.id)


async def evidence(
    run: JobRun, job: Job | None, told: Job | None = None
) -> tuple[str, Job | None, str | None]:
    """The main container's log tail, the pod that tells the story of ``told`` (``job``
    unless given: the outcome may be one a GET saw before the watch did), and why the log
    could not be read."""
    uid = run.uid
    if job is None or not uid:
        return "", None, "the Job is gone"
    cluster, namespace = run.runner.cluster, run.where.namespace
    try:
        pod = _story(told or job, await cluster.pods(namespace, uid))
    except Exception as err:
        return "", None, str(err)
    main = main_container(job)
    if pod is None:
        return "", None, "the Job has no pod (none was started, or they were deleted)"
    if main is None:
        return "", pod, "the Job's pod template names no container"
    name = str((pod.get("metadata") or {}).get("name"))
    try:
        output = await cluster.log_tail(namespace, name, main, run.runner.output_limit)
    except Exception as err:
        return "", pod, str(err)
    return output, pod, None


async def conclude(run: JobRun, job: Job) -> Outcome:
    run.runner.forget(run.uid)  # over: a watch cache that lags does not make it run again
    output, pod, error = await evidence(run, job)
    ended = outcome_of(job, pod, main=main_container(job), log_error=error)
    said = (ended.status, ended.exit_code, ended.reason, ended.message, output)
    if run.definition is not None:
        # Followed from its creation: it ended when this crontask saw it end.
        return Outcome(*said, job=ended.details)
    return JobEnd(*said, job=ended.details, ended_at=_ended_at(job))
