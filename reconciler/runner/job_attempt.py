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
   A create refused fails the attempt (``JobCreateFailed``); one that went unanswered is tried
   again, and the name read until the API server says whether the Job was made
   (``runner.job_create``, which also says what a stop while creating does).
3. The record gets the Job's uid; the attempt follows the Job in the watch cache until it has a
   terminal condition, checking with a GET every ``verify_seconds`` (a lagging or broken watch
   never leaves it waiting forever, and a Job deleted meanwhile is noticed: ``JobDeleted``,
   unless it was seen decided before it went (the watch's last state of it, or this attempt's
   own last look): then that is the outcome; else the outcome is unknown, and the dispatcher
   never retries it: the work may have run to its end, and a retry would run it twice). With
   ``timeoutSeconds``, crontask does not rely on the cluster alone to end it: a Job that has
   not finished ``timeoutSeconds`` and :data:`DEADLINE_MARGIN` after its creation (the
   cluster's ``activeDeadlineSeconds`` counts from its start, a moment later, and needs a
   moment to act) is deleted (Background, uid precondition) and the attempt is ``timedOut``.
   While none of its pods has run and it has a deadline, the attempt also looks at them now
   and then (``job_end.Pending``: one LIST of pods, no GET of the Job), so that a timeout of
   a Job the cluster never ran (its pod never scheduled, or stuck on its image) says so
   rather than ``DeadlineExceeded``.
   The time counts from the Job's creation and from when this crontask began to follow it,
   whichever is later (the creation is on the API server's clock: alone, a host clock ahead
   of it would end Jobs at once); a resumed run's, from its adoption. A Job whose outcome the
   cluster has decided (``core.jobs.decided``: ``SuccessCriteriaMet``/``FailureTarget``, while
   its pods terminate) gets its pods' ``terminationGracePeriodSeconds`` more; deleted then,
   its decided outcome is the attempt's, not a timeout.
4. At the end (``runner.job_end``), before anything can clean the Job up: the pod that tells
   the story (``core.job_pods``: a failed pod of a failed Job, a succeeded one of a complete
   Job, the last to finish; a retried or parallel Job has several), each container's exit code
   and reason, and the last ``output_limit`` bytes of the main container's log through
   ``pods/log`` (or why it could not be read). ``Complete`` (or
   ``SuccessCriteriaMet``) is ``succeeded``; ``Failed`` (or ``FailureTarget``) is ``failed``
   with the condition's reason, ``timedOut`` for
   ``DeadlineExceeded`` (``spec.timeoutSeconds`` is the Job's ``activeDeadlineSeconds`` unless
   the JobSpec sets one: the cluster enforces it, so no crontask is needed to stop a stuck Job).
   The outcome says when the Job ended (``job_end.JobEnd``): a resumed run's may have ended
   long before this crontask started, a followed one's while this crontask could not see it.
   A resumed run follows the Job its record names: this run's
   as ``run_in`` decides, or the one whose uid the record holds when nothing controls it now
   (a CronTask orphaned its Jobs and was applied again), or when the task's own CronTask
   controls it and no definition is in force for the key (the CronTask made invalid while
   crontask was down, or not listed yet at the start: ``JobRun._recorded``); any other is
   left alone (``JobGone``, the message saying why).

``stop("Shutdown")`` detaches (the Job runs on; the record stays ``running`` and names it);
any other stop (``Replaced``) deletes the Job with ``propagationPolicy: Background`` after
keeping its log, and the attempt fails with that reason. A delete (of a stop or of the
backstop) that the API server refuses or does not answer is tried again in the background
(``runner.job_delete``): the attempt's end is recorded at once, and nothing waits for it.
``runner.job.JobRunner`` makes the attempts, and knows where each task's Jobs are.

This module holds the attempt (:class:`JobRun`: its start, its adoption, its following of the
Job) and what it needs of the cluster (:class:`JobCluster`); how it ends (the evidence, the
outcome, a stop's, the backstop's) is ``runner.job_end``'s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from reconciler.core.desired import Definition
from reconciler.core.jobs import (
    controller_of,
    crontask_key,
    decided,
    finished,
    job_manifest,
    main_container,
    run_in,
    run_of,
    termination_grace,
)
from reconciler.core.runs import JOB_DELETED, JobDetails, RunRecord, RunStatus
from reconciler.core.status import ObjectRef, parse_time
from reconciler.runner import job_end
from reconciler.runner.base import Outcome, failed, run_environment
from reconciler.runner.job_create import Unknown, create_job, made_from, read_job
from reconciler.runner.job_end import job_uid

if TYPE_CHECKING:
    from reconciler.runner.job import JobRunner

log = logging.getLogger("crontask.runner")

Progress = Callable[[RunRecord], Awaitable[None]]
Job = dict[str, Any]
Home = Callable[[str], tuple[str, str | None]]


class PodReads(Protocol):
    """The reads of a Job, its pods and their log (``JobRunner.stop_reads``: a run's end's)."""

    async def pods(self, namespace: str, uid: str, *, cached: bool = False) -> list[Job]:
        """The pods the Job ``uid`` controls; ``cached``: as the API server's cache has them
        (a moment behind, perhaps; no quorum read), enough for a look while it runs."""
        ...

    async def log_tail(self, namespace: str, pod: str, container: str, limit: int) -> str: ...

    async def get(self, namespace: str, name: str) -> Job | None: ...


class JobCluster(PodReads, Protocol):
    """What the action needs of the cluster (see ``sources.kubernetes_jobs.JobWatch``)."""

    async def watch(self, namespace: str) -> None: ...

    def cached(self, namespace: str, name: str) -> Job | None: ...

    def ended(self, namespace: str, name: str) -> Job | None:
        """The last state the watch saw of the Job ``namespace/name`` once its outcome was
        decided (``core.jobs.decided``), kept a while after the Job is gone (something may
        delete a Job as soon as it ends); None if none was seen. The caller checks the uid."""
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

    def when_answered(self) -> asyncio.Future[None]:
        """Set at the API server's next answer to any request, or change the watch sees
        (``sources.answers``), counting from this call; cancel it to stop waiting."""
        ...

    async def create(self, body: Job) -> tuple[Job, bool]: ...

    async def delete(self, namespace: str, name: str, uid: str | None) -> bool: ...


class _Gone(Exception):
    """The Job is no longer there (deleted, or replaced by another of the same name)."""


class _Overdue(Exception):
    """The Job has not finished ``timeoutSeconds`` and the margin after its creation (and,
    decided, its pods' grace): ``job`` is how it was last seen."""

    def __init__(self, job: Job) -> None:
        super().__init__("overdue")
        self.job = job


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
        # On this host's clock, when its first create was sent, and when the Job came back
        # (that create's answer, a 409 of a create sent again, the read after one unanswered):
        # it was created between the two (``job_end.JobEnd.created_within``). None: not here.
        self.create_sent: datetime | None = None
        self.created_here: datetime | None = None
        self.pending = job_end.Pending()  # its pods, while none has run (job_end.never_ran)

    def stop(self, reason: str) -> None:
        if self._reason is None:
            self._reason = reason
            self._stopped.set()

    @property
    def stop_reason(self) -> str | None:
        return self._reason

    @property
    def uid(self) -> str | None:
        """The Job's uid, once it is known (created, found, or as the record held it)."""
        return self._uid

    async def pause(
        self, seconds: float, wake: asyncio.Future[None] | None = None, spread: float = 0.0
    ) -> bool:
        """Wait ``seconds``, or less if the attempt is stopped, or if ``wake`` is set first:
        then ``spread`` seconds more (within ``seconds``: the runs it woke do not all ask at
        once). Whether it is stopped. ``wake`` is cancelled when it returns."""
        loop = asyncio.get_running_loop()
        ends = loop.time() + seconds
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            waits: set[asyncio.Future[Any]] = {stopped} if wake is None else {stopped, wake}
            done, _ = await asyncio.wait(
                waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
            if wake in done and stopped not in done:
                await asyncio.wait({stopped}, timeout=max(0.0, min(spread, ends - loop.time())))
        finally:
            stopped.cancel()
            if wake is not None:
                wake.cancel()
        return self._reason is not None

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
                return await job_end.stopping(self, self._reason)
            return await job_end.conclude(self, job)
        except _Overdue as overdue:
            return await job_end.overdue(self, overdue.job)
        except _Gone:
            self.runner.forget(self._uid)
            message = (
                f"Job {self.where.name} in {self.where.namespace} was deleted before crontask "
                "saw it finish; its outcome is unknown, so it is not retried (it may have run "
                "to its end: a retry could run its work twice)"
            )
            return dataclasses.replace(failed(JOB_DELETED, message), job=self.details())

    def details(self) -> JobDetails:
        """Where the Job is, with its uid once known."""
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
        made_from(body, self.definition)
        self.create_sent = runner.clock()
        job = await create_job(self, body)
        if isinstance(job, Outcome):
            return job
        self.created_here = runner.clock()
        self._uid = job_uid(job)
        await runner.announce(dataclasses.replace(record, job=self.details()))
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
            if job is None and self._reason is not None:  # stopped while it went unanswered
                return await job_end.stopping(self, self._reason)
        if job is None or not (self.ours(job) or self._recorded(job)):
            # Reason JobGone either way (what the README and people's alerts know); the message
            # tells a Job that is gone from one that is there and not this run's (left alone).
            why = "no longer exists (crontask stopped before creating it, or it was deleted)"
            if job is not None:
                why = self._not_followed(job)
            message = f"Job {where.name} in {where.namespace} {why}: the outcome is unknown"
            details = self.details()
            return Outcome(RunStatus.INTERRUPTED, None, "JobGone", message, "", job=details)
        self._uid = job_uid(job)
        return job

    def _recorded(self, job: Job) -> bool:
        """Whether ``job`` is the very Job this run's record names (``_names_this_run``),
        and no one else's now. Nothing controls it: a CronTask deleted with
        ``--cascade=orphan`` and applied again (a new uid) leaves its Job without a controller,
        running this run's work; followed here to its end, it is this process's run for
        ``Forbid`` meanwhile. Or its controller is the task's own CronTask (same namespace and
        name) while no definition is in force for the key (``JobRunner.unclaimed``): the
        CronTask made invalid while crontask was down, or not listed yet; nothing else can
        claim the Job then, and the run follows it to its real end instead of calling it
        interrupted while it lives. A Job controlled by a CronTask of another key, or by this
        key's CronTask while a definition is in force that is not that CronTask (it lost its
        key to another source, or was applied again with a new uid), or by an earlier object
        of this key's CronTask (deleted and applied again: ``JobRunner.listed``), is left alone
        (``run_in``): it is never followed, replaced or deleted here."""
        if not self._names_this_run(job):
            return False
        controller = controller_of(job)
        if controller is None:
            return True
        task = self.record.task
        if crontask_key(job, controller) != task or not self.runner.unclaimed(task):
            return False
        # Deleted (and perhaps applied again) while crontask was down: the Job is the deleted
        # object's, which the garbage collector takes (not listed yet: nothing tells; followed).
        present = self.runner.listed(task)
        if present is None:
            return True
        return isinstance(present, ObjectRef) and present.uid == controller.get("uid")

    def _names_this_run(self, job: Job) -> bool:
        """Whether ``job`` has the uid this run's record holds (the API server's, which only
        this run's record holds) and names this run and attempt."""
        run = run_of(job) if self.where.uid and job_uid(job) == self.where.uid else None
        record = self.record
        return run is not None and (run.task, run.run_id, run.attempt) == (
            record.task,
            record.id,
            record.attempt,
        )

    def _not_followed(self, job: Job) -> str:
        """Why a Job of the recorded name that is there is not followed (``_find``)."""
        uid, recorded = job_uid(job), self.where.uid
        if not recorded or uid != recorded:
            return f"exists but is not this run's (uid {uid}; recorded: {recorded})"
        if not self._names_this_run(job):
            return (
                f"has the recorded uid {uid} but no longer names this run and attempt; left alone"
            )
        controller = controller_of(job) or {}
        return (
            f"is this run's (uid {uid}, as recorded) but is controlled by "
            f"{controller.get('kind')} {controller.get('name')} (uid {controller.get('uid')}), "
            f"which does not hold {self.record.task} now; left alone"
        )

    def ours(self, job: Job) -> bool:
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
        loop = asyncio.get_running_loop()
        verify = False
        quiet_until: float | None = None  # a GET verifies the Job then, if nothing changed
        while True:
            # Waiting for a change starts before the look: a Job that ends between the two
            # would otherwise be seen only at the next verification, verify_seconds later.
            changed = cluster.when_changed(where.namespace, where.name)
            try:
                seen = cluster.cached(where.namespace, where.name)
                if job_uid(seen) != self._uid or verify:
                    seen = await self._read()
                    if self._reason is not None:
                        return job
                    if job_uid(seen) != self._uid:
                        return self._last_end(job)
                assert seen is not None
                job = seen
                if finished(job) is not None or self._reason is not None:
                    return job
                left = self._time_left(job)
                if left is not None and left <= 0:
                    raise _Overdue(job)
                if verify or quiet_until is None:
                    quiet_until = loop.time() + self.runner.verify_seconds
                wait = (
                    quiet_until - loop.time()
                    if left is None
                    else min(left, quiet_until - loop.time())
                )
                look = await self._look_at_pods(job)
                for_look = look is not None and look < wait
                if look is not None:
                    wait = min(wait, look)
                stopped: asyncio.Future[Any] = asyncio.ensure_future(self._stopped.wait())
                done, _ = await asyncio.wait(
                    {changed, stopped},
                    timeout=wait,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                stopped.cancel()
                if stopped in done:
                    return job
                # A quiet interval: ask (the look's timer is no reason to: a look is a LIST
                # of pods, and the interval of quiet goes on counting).
                verify = not done and not for_look
                if done:
                    quiet_until = None
            finally:
                changed.cancel()

    async def _look_at_pods(self, job: Job) -> float | None:
        """Look at the Job's pods if it is time to (``job_end.Pending``: a timeout of a Job
        whose pod never ran says why); the seconds until the next look, None if none is due.
        A look that fails is not the attempt's failure: the next one may do."""
        loop = asyncio.get_running_loop()
        interval = job_end.Pending.interval(job, self.timeout, self.runner.verify_seconds)
        due = self.pending.due(job, loop.time(), interval)
        if due is None or due > 0 or not self._uid or interval is None:
            return due
        # A look while the Job runs may be a moment behind (the API server's cache); the one
        # when the cluster has decided is the last, and reads what is there now.
        cached = decided(job) is None
        try:
            pods = await self.runner.cluster.pods(self.where.namespace, self._uid, cached=cached)
            self.pending.saw(pods, main_container(job))
        except Exception as err:
            log.debug("cannot look at the Job's pods", extra={"fields": {"error": repr(err)}})
        self.pending.looked(loop.time(), interval)
        return interval

    def _last_end(self, job: Job) -> Job:
        """The Job is gone: its end as the watch last saw it, if it ended before it went (a
        Job deleted at once when it ends: its outcome is known, and must not be retried as
        unknown), else ``job`` (this attempt's last look at it) if the cluster had decided its
        outcome then (deleted while its pods terminated); else raise :class:`_Gone`."""
        last = self.runner.cluster.ended(self.where.namespace, self.where.name)
        if last is not None and job_uid(last) == self._uid and decided(last) is not None:
            return last
        if job_uid(job) == self._uid and decided(job) is not None:
            return job
        raise _Gone

    def _time_left(self, job: Job) -> float | None:
        """Seconds until the backstop ends the Job (None: the task has no timeout): the time
        and the margin past the Job's creation, and past when this process began to follow
        it, whichever is later. The creation is on the API server's clock and the time now on
        this host's: were they compared alone, a host clock ahead of the server's by more than
        the timeout would delete every Job as soon as it was made. Since this process follows
        the Job, its own clock counts; for a run resumed after a restart, that is from then.
        A Job whose outcome is decided gets its pods' grace more: its terminal condition comes
        once they have terminated, which they may take that long to do."""
        if self.timeout is None:
            return None
        created = parse_time((job.get("metadata") or {}).get("creationTimestamp"))
        if created is None:
            return None  # the API server always sets it; without it there is nothing to count
        now = self.runner.clock()
        if self._following_since is None:
            self._following_since = now
        allowed = timedelta(seconds=self.timeout + self.runner.deadline_margin)
        if decided(job) is not None:
            allowed += timedelta(seconds=termination_grace(job))
        ends = max(created, self._following_since) + allowed
        return (ends - now).total_seconds()

    async def _read(self) -> Job | None:
        """The Job as the API server has it now (``runner.job_create.read_job``); None if it is
        not found, or if the attempt was stopped before the API server answered."""
        job = await read_job(self)
        return None if isinstance(job, Unknown) else job
