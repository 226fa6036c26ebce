"""One attempt of a ``job`` task: one Kubernetes batch/v1 Job, from its creation to its end.

One attempt, in order:

1. The running record is rewritten with the Job's namespace and name (derived from task, slot
   and attempt: ``core.jobs.job_name``) *before* the Job exists, so that a crontask that dies
   from here on finds the run by its Job at the next start, and adopts it instead of marking it
   interrupted.
2. The Job is created (``core.jobs.job_manifest``). A ``409 AlreadyExists`` whose Job is this
   run's attempt as ``core.jobs.run_in`` decides (its run id and attempt, and, for a task read
   from a CronTask, that CronTask as its controller) is this attempt's own Job (created before a
   restart, or by another replica for the same claim): it is adopted, never duplicated. A Job of
   that name that is not this run's fails the attempt (``JobNameTaken``) and is left alone.
   Transient API errors are retried a few times (the name makes a retry safe); then the name is
   read once more (the API server may have created the Job and failed to answer): this run's
   Job there is followed as if the create had answered, else the attempt fails
   (``JobCreateFailed``).
3. The record gets the Job's uid; the attempt follows the Job in the watch cache until it has a
   terminal condition, checking with a GET every ``verify_seconds`` (a lagging or broken watch
   never leaves it waiting forever, and a Job deleted meanwhile is noticed: ``JobDeleted``,
   unless the watch saw it end before it went: then its last state is the outcome; else the
   outcome is unknown, and the dispatcher never retries it: the work may have run to its end,
   and a retry would run it twice). With
   ``timeoutSeconds``, crontask does not rely on the cluster alone to end it: a Job that has
   not finished ``timeoutSeconds`` and :data:`DEADLINE_MARGIN` after its creation (the
   cluster's ``activeDeadlineSeconds`` counts from its start, a moment later, and needs a
   moment to act) is deleted (Background, uid precondition) and the attempt is ``timedOut``.
   The time counts from the Job's creation and from when this crontask began to follow it,
   whichever is later (the creation is on the API server's clock: alone, a host clock ahead
   of it would end Jobs at once); a resumed run's, from its adoption.
4. At the end, before anything can clean the Job up: the pods (the newest one tells the
   story), each container's exit code and reason, and the last ``output_limit`` bytes of the main
   container's log through ``pods/log`` (or why it could not be read). ``Complete`` is
   ``succeeded``; ``Failed`` is ``failed`` with the condition's reason, ``timedOut`` for
   ``DeadlineExceeded`` (``spec.timeoutSeconds`` is the Job's ``activeDeadlineSeconds`` unless
   the JobSpec sets one: the cluster enforces it, so no crontask is needed to stop a stuck Job).
   A resumed run's outcome says when the Job ended (:class:`JobEnd`): it may have ended long
   before this crontask started.

``stop("Shutdown")`` detaches (the Job runs on; the record stays ``running`` and names it);
any other stop (``Replaced``) deletes the Job with ``propagationPolicy: Background`` after
keeping its log, and the attempt fails with that reason. A delete (of a stop or of the
backstop) that the API server refuses or does not answer is tried again in the background
(``runner.job_delete``): the attempt's end is recorded at once, and nothing waits for it.
``runner.job.JobRunner`` makes the attempts, and knows where each task's Jobs are.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from reconciler.core.desired import Definition
from reconciler.core.jobs import (
    finished,
    job_manifest,
    latest_pod,
    main_container,
    outcome_of,
    run_in,
    with_pod,
)
from reconciler.core.runs import JOB_DELETED, JobDetails, RunRecord, RunStatus
from reconciler.core.status import parse_time
from reconciler.runner.base import Outcome, failed, run_environment
from reconciler.runner.job_delete import delete_job

if TYPE_CHECKING:
    from reconciler.runner.job import JobRunner

log = logging.getLogger("crontask.runner")

SHUTDOWN = "Shutdown"
Progress = Callable[[RunRecord], Awaitable[None]]
Job = dict[str, Any]
Home = Callable[[str], tuple[str, str | None]]
DEADLINE_EXCEEDED = "DeadlineExceeded"


class JobCluster(Protocol):
    """What the action needs of the cluster (see ``sources.kubernetes_jobs.JobWatch``)."""

    async def watch(self, namespace: str) -> None: ...

    def cached(self, namespace: str, name: str) -> Job | None: ...

    def ended(self, namespace: str, name: str) -> Job | None:
        """The last state the watch saw of the Job ``namespace/name`` with a terminal
        condition, kept a while after the Job is gone (something may delete a Job as soon
        as it ends); None if none was seen. The caller checks the uid."""
        ...

    def live(self, task: str) -> list[Job]: ...

    def trust(self, home: Home) -> None:
        """From now on, a Job is a task's only if ``core.jobs.run_in`` says so for the
        namespace and owner uid ``home(task)`` gives."""
        ...

    def when_changed(self, namespace: str, name: str) -> asyncio.Future[None]:
        """Set at the next change of the cached Job. It counts from this call, so a change
        between a look at the cache and the wait is not missed; cancel it to stop waiting."""
        ...

    async def create(self, body: Job) -> tuple[Job, bool]: ...

    async def get(self, namespace: str, name: str) -> Job | None: ...

    async def delete(self, namespace: str, name: str, uid: str | None) -> bool: ...

    async def pods(self, namespace: str, uid: str) -> list[Job]: ...

    async def log_tail(self, namespace: str, pod: str, container: str, limit: int) -> str: ...


def _uid(job: Job | None) -> str | None:
    return None if job is None else (job.get("metadata") or {}).get("uid")


def _newest(pods: list[Job]) -> Job | None:
    pod = latest_pod(pods)
    return None if pod is None else dict(pod)


@dataclasses.dataclass(frozen=True, slots=True)
class JobEnd(Outcome):
    """The outcome of a resumed run: ``ended_at`` is when its Job ended, by the Job's own
    account (``completionTime``, else its terminal condition's ``lastTransitionTime``; None if
    it says neither), on the API server's clock: it may have ended while no crontask ran."""

    ended_at: datetime | None = None


def _ended_at(job: Job) -> datetime | None:
    status = job.get("status") or {}
    if (completed := parse_time(status.get("completionTime"))) is not None:
        return completed
    for condition in status.get("conditions") or ():
        kind = condition.get("type")
        if kind in ("Complete", "Failed") and condition.get("status") == "True":
            return parse_time(condition.get("lastTransitionTime"))
    return None


class _Gone(Exception):
    """The Job is no longer there (deleted, or replaced by another of the same name)."""


class _Overdue(Exception):
    """The Job has not finished ``timeoutSeconds`` and the margin after its creation."""


class JobRun:
    """One attempt of a job task (see the module docstring)."""

    outlives_process = True

    def __init__(
        self,
        runner: JobRunner,
        record: RunRecord,
        where: JobDetails,
        *,
        definition: Definition | None = None,
        timeout: float | None = None,
    ) -> None:
        self.runner = runner
        self.record = record
        self.where = where
        self.definition = definition  # None: resume a Job created before, create nothing
        self.timeout = timeout  # the task's timeoutSeconds: the backstop (module docstring)
        self._following_since: datetime | None = None  # on this host's clock (_time_left)
        self._reason: str | None = None
        self._stopped = asyncio.Event()
        self._uid: str | None = where.uid

    def stop(self, reason: str) -> None:
        if self._reason is None:
            self._reason = reason
            self._stopped.set()

    async def run(self) -> Outcome:
        if self._reason is not None and self.definition is not None:
            return failed(self._reason, f"stopped before it started: {self._reason}")
        # Resuming, a stop that came first still applies to the Job, which exists already.
        try:
            job = await (self._start() if self.definition is not None else self._find())
            if isinstance(job, Outcome):
                return job
            if self._reason is None:
                job = await self._follow(job)
            if self._reason is not None:
                return await self._stopping(self._reason)
            return await self._conclude(job)
        except _Overdue:
            return await self._overdue()
        except _Gone:
            self.runner.forget(self._uid)
            message = (
                f"Job {self.where.name} in {self.where.namespace} was deleted before crontask "
                "saw it finish; its outcome is unknown, so it is not retried (it may have run "
                "to its end: a retry could run its work twice)"
            )
            return dataclasses.replace(failed(JOB_DELETED, message), job=self._details())

    def _details(self) -> JobDetails:
        return dataclasses.replace(self.where, uid=self._uid)

    # -- starting ------------------------------------------------------------------------------

    async def _start(self) -> Job | Outcome:
        runner, record, where = self.runner, self.record, self.where
        assert self.definition is not None
        await runner.announce(dataclasses.replace(record, job=where))
        try:
            await runner.cluster.watch(where.namespace)
        except Exception as err:
            return failed("JobCreateFailed", f"Job {where.name}: {err}")
        if self._reason is not None:
            return failed(self._reason, f"stopped before its Job was created: {self._reason}")
        body = job_manifest(
            self.definition,
            record,
            namespace=where.namespace,
            name=where.name,
            env=run_environment(record),
            owner=runner.owner(record.task),
        )
        job = await self._create(body)
        if isinstance(job, Outcome):
            return job
        self._uid = _uid(job)
        await runner.announce(dataclasses.replace(record, job=self._details()))
        return job

    async def _create(self, body: Job) -> Job | Outcome:
        where = self.where
        delay = 0.5
        for attempt in range(1, self.runner.create_attempts + 1):
            try:
                job, created = await self.runner.cluster.create(body)
            except Exception as err:
                status = getattr(err, "status", None)
                transient = status is None or status in (409, 429) or status >= 500
                if not transient:
                    return failed("JobCreateFailed", f"Job {where.name}: {err}")
                if attempt == self.runner.create_attempts:
                    return await self._created_unanswered(err)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), delay)
                if self._reason is not None:
                    return failed(self._reason, f"stopped before its Job was created: {err}")
                delay *= 2
                continue
            if not created and not self._ours(job):
                return failed(
                    "JobNameTaken",
                    f"a Job named {where.name} exists in {where.namespace} and is not this "
                    "run's (another run's or attempt's, or not made by crontask for this task); "
                    "it was left alone",
                )
            if not created:
                log.info(
                    "job adopted: created before for this attempt",
                    extra={"fields": {"run": self.record.id, "job": where.name}},
                )
            return job
        raise AssertionError("unreachable")  # the loop returns on its last attempt

    async def _created_unanswered(self, err: Exception) -> Job | Outcome:
        """The creates went unanswered: the API server may have made the Job all the same
        (a timeout after the write). If this attempt's Job is there, it is followed as if the
        create had answered; a retry would make a second Job of the run."""
        where = self.where
        failure = failed("JobCreateFailed", f"Job {where.name}: {err}")
        try:
            job = await self.runner.cluster.get(where.namespace, where.name)
        except Exception:
            return failure
        if job is None or not self._ours(job):
            return failure
        log.info(
            "job created although its create went unanswered; following it",
            extra={"fields": {"run": self.record.id, "job": where.name}},
        )
        return job

    async def _find(self) -> Job | Outcome:
        """Resume: the Job this record names, if it is still this run's."""
        where = self.where
        try:
            await self.runner.cluster.watch(where.namespace)
        except Exception as err:  # the Job is read directly below; the watch only helps
            log.warning("cannot watch the Job's namespace", extra={"fields": {"error": str(err)}})
        job = self.runner.cluster.cached(where.namespace, where.name)
        if job is None:
            job = await self._read()
            if job is None and self._reason is not None:
                return await self._stopping(self._reason)  # stopped while it went unanswered
        if job is None or not self._ours(job):
            return Outcome(
                RunStatus.INTERRUPTED,
                None,
                "JobGone",
                f"Job {where.name} in {where.namespace} no longer exists (crontask stopped "
                "before creating it, or it was deleted): the outcome of this attempt is unknown",
                "",
                job=self._details(),
            )
        self._uid = _uid(job)
        return job

    def _ours(self, job: Job) -> bool:
        """Whether ``job`` is this attempt's Job: as ``core.jobs.run_in`` decides for the task
        (its namespace, its name, and, for a CronTask's task, that CronTask as controller), and
        of this run and attempt. Its annotations alone are anyone's to write."""
        record = self.record
        owner_uid = self.runner.home(record.task)[1]
        run = run_in(job, record.task, self.where.namespace, owner_uid)
        return run is not None and (run.run_id, run.attempt) == (record.id, record.attempt)

    # -- following -----------------------------------------------------------------------------

    async def _follow(self, job: Job) -> Job:
        """Wait for the Job's terminal condition; raise :class:`_Gone`. Returns early (with
        the last state seen) when stopped."""
        cluster, where = self.runner.cluster, self.where
        verify = False
        while True:
            # Waiting for a change starts before the look: a Job that ends between the two
            # would otherwise be seen only at the next verification, verify_seconds later.
            changed = cluster.when_changed(where.namespace, where.name)
            try:
                seen = cluster.cached(where.namespace, where.name)
                if _uid(seen) != self._uid or verify:
                    seen = await self._read()
                    if self._reason is not None:
                        return job
                    if _uid(seen) != self._uid:
                        return self._last_end()
                assert seen is not None
                job = seen
                if finished(job) is not None or self._reason is not None:
                    return job
                left = self._time_left(job)
                if left is not None and left <= 0:
                    raise _Overdue
                wait = (
                    self.runner.verify_seconds
                    if left is None
                    else min(left, self.runner.verify_seconds)
                )
                stopped: asyncio.Future[Any] = asyncio.ensure_future(self._stopped.wait())
                done, _ = await asyncio.wait(
                    {changed, stopped},
                    timeout=wait,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                stopped.cancel()
                if stopped in done:
                    return job
                verify = not done  # a quiet interval: ask
            finally:
                changed.cancel()

    def _last_end(self) -> Job:
        """The Job is gone: its end as the watch last saw it, if it ended before it went (a
        Job deleted at once when it ends: its outcome is known, and must not be retried as
        unknown); else raise :class:`_Gone`."""
        last = self.runner.cluster.ended(self.where.namespace, self.where.name)
        if last is None or _uid(last) != self._uid or finished(last) is None:
            raise _Gone
        return last

    def _time_left(self, job: Job) -> float | None:
        """Seconds until the backstop ends the Job (None: the task has no timeout): the time
        and the margin past the Job's creation, and past when this process began to follow
        it, whichever is later. The creation is on the API server's clock and the time now on
        this host's: were they compared alone, a host clock ahead of the server's by more than
        the timeout would delete every Job as soon as it was made. Since this process follows
        the Job, its own clock counts; for a run resumed after a restart, that is from then."""
        if self.timeout is None:
            return None
        created = parse_time((job.get("metadata") or {}).get("creationTimestamp"))
        if created is None:
            return None  # the API server always sets it; without it there is nothing to count
        now = self.runner.clock()
        if self._following_since is None:
            self._following_since = now
        allowed = timedelta(seconds=self.timeout + self.runner.deadline_margin)
        ends = max(created, self._following_since) + allowed
        return (ends - now).total_seconds()

    async def _read(self) -> Job | None:
        """The Job as the API server has it now (None: not found). An API server that does not
        answer is asked again, with a growing pause, until it does or the attempt is stopped
        (then None): the Job may well be running, and nothing is concluded without it."""
        delay = 0.5
        while True:
            try:
                return await self.runner.cluster.get(self.where.namespace, self.where.name)
            except Exception as err:
                log.warning(
                    "cannot read a Job; trying again",
                    extra={"fields": {"job": self.where.name, "error": str(err)}},
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), delay)
            if self._reason is not None:
                return None
            delay = min(delay * 2, self.runner.verify_seconds)

    async def _stopping(self, reason: str) -> Outcome:
        details = self._details()
        if reason == SHUTDOWN:
            return Outcome(
                RunStatus.RUNNING,
                None,
                reason,
                f"crontask stopped; Job {details.name} runs on and is adopted at the next start",
                "",
                job=details,
            )
        cluster = self.runner.cluster
        output, pod, error = await self._evidence(cluster.cached(details.namespace, details.name))
        details = with_pod(details, pod, error)
        deleted = await self._delete()
        if isinstance(deleted, str):
            what = f"could not be deleted yet ({deleted}); crontask tries again until it is"
        else:
            what = "deleted" if deleted else "was gone already"
        message = f"stopped: {reason}; Job {details.name} {what}"
        return Outcome(RunStatus.FAILED, None, reason, message, output, job=details)

    async def _overdue(self) -> Outcome:
        """The backstop: the cluster has not ended the Job in time (a suspended Job, one
        another controller manages, a Job controller that is down): keep its log, delete it
        (Background, its uid as precondition, as for ``Replace``), and time the attempt out."""
        cluster, details = self.runner.cluster, self._details()
        output, pod, error = await self._evidence(cluster.cached(details.namespace, details.name))
        details = with_pod(details, pod, error)
        message = (
            f"Job {details.name} did not finish within timeoutSeconds ({self.timeout:g}s) and "
            f"{self.runner.deadline_margin:g}s more after its creation; crontask"
        )
        deleted = await self._delete()
        if isinstance(deleted, str):
            message += f" could not delete it yet ({deleted}) and tries again until it can"
        else:
            message += " deleted it" if deleted else " found it gone already"
        return Outcome(RunStatus.TIMED_OUT, None, DEADLINE_EXCEEDED, message, output, job=details)

    async def _delete(self) -> bool | str:
        """Delete the Job (``runner.job_delete``, which tries again if it must)."""
        return await delete_job(self.runner, self.where, self._uid, self.record.id)

    # -- the end -------------------------------------------------------------------------------

    async def _evidence(self, job: Job | None) -> tuple[str, Job | None, str | None]:
        """The main container's log tail, the newest pod, and why the log could not be read."""
        if job is None or not self._uid:
            return "", None, "the Job is gone"
        cluster, namespace = self.runner.cluster, self.where.namespace
        try:
            pod = _newest(await cluster.pods(namespace, self._uid))
        except Exception as err:
            return "", None, str(err)
        main = main_container(job)
        if pod is None:
            return "", None, "the Job has no pod (none was started, or they were deleted)"
        if main is None:
            return "", pod, "the Job's pod template names no container"
        name = str((pod.get("metadata") or {}).get("name"))
        try:
            output = await cluster.log_tail(namespace, name, main, self.runner.output_limit)
        except Exception as err:
            return "", pod, str(err)
        return output, pod, None

    async def _conclude(self, job: Job) -> Outcome:
        self.runner.forget(self._uid)  # over: a watch cache that lags does not make it run again
        output, pod, error = await self._evidence(job)
        ended = outcome_of(job, pod, main=main_container(job), log_error=error)
        said = (ended.status, ended.exit_code, ended.reason, ended.message, output)
        if self.definition is not None:
            # Followed from its creation: it ended when this crontask saw it end.
            return Outcome(*said, job=ended.details)
        return JobEnd(*said, job=ended.details, ended_at=_ended_at(job))
