"""How one attempt of a ``job`` task ends (``runner.job_attempt``, step 4, and its stops).

Before anything can clean the Job up, its evidence is kept (:func:`evidence`): the pod that tells
the story (``core.job_pods``), each container's exit code and reason, and the last
``output_limit`` bytes of the main container's log (of the failed container's that finished
first, if the Job failed and the main one did not: ``core.job_pods.story_container``), or why it
could not be read. Then the outcome:

- the Job's own (:func:`conclude`), which says when the Job ended (:class:`JobEnd`);
- a stop's (:func:`stopping`): at shutdown the attempt detaches (the Job runs on, the record
  stays ``running`` and names it); any other stop deletes the Job and fails the attempt,
  unless the Job has ended already, seen by the watch (the end and the stop came together) or
  by a read of the Job, first of the stop's reads (:func:`_stop_evidence`: the watch may be
  down or behind): then its own outcome is the attempt's, and the Job, over, is left to the
  history limits;
- the ``timeoutSeconds`` backstop's (:func:`overdue`): the Job is deleted and the attempt is
  ``timedOut`` (:data:`DEADLINE_EXCEEDED`), unless the cluster had decided its outcome.

A Job that timed out (the cluster's ``DeadlineExceeded``, or the backstop) although none of
its pods ever ran is no Job that ran too long: its pod was never scheduled, or never started.
The deadline deletes such a pod at once (an unscheduled pod has no kubelet to wait for), so
its story is what the attempt saw of its pods while it followed the Job (:class:`Pending`,
``core.job_pods.stuck_story``), last when the cluster decided the Job's outcome if its pods
were still there: the attempt stays ``timedOut`` (retried as any timeout is), with the stuck
pod's reason (``Unschedulable``, ``ImagePullBackOff``...) instead of ``DeadlineExceeded`` and
what the cluster said of it in the message, with how long before the end it was seen
(:func:`never_ran`). Looking never decides the end: a pod of a shape nothing expected, or a
look that fails, leaves the story untold, and the Job is deleted all the same. A
backstop whose delete is not answered yet keeps ``DeadlineExceeded`` as the reason (the
message still tells): that reason is what makes a crontask that adopts the Job after a restart
stop it again.

A delete is ``runner.job_delete``'s, which tries again in the background if it must; one
refused for good is tried again when crontask meets the Job again (:data:`_AGAIN`).

Every end's evidence (:func:`conclude`, :func:`stopping`, :func:`overdue`) is read with
``JobRunner.stop_reads`` (each read sent once, or twice if the first failed at once
with no answer or a 5xx: ``sources.end_reads``; given up after
``sources.job_calls.STOP_READ_TIMEOUT``), all of it within :data:`STOP_READS_WAIT`
(:func:`_bounded_evidence`): the run holds its slot until its end is recorded (``Replace``
waits for a stop, from the decision, up to ``controller.replace_wait.WAIT_MAX``; ``Forbid``
skips the slots meanwhile), and an API server that takes the reads and never answers must not
hold it longer than the reads' bounds (and a stop's delete's) together. Through the client of
the other calls, urllib3's ``Retry(3)`` sent each read again at each read timeout: minutes. A
read that failed at once, with no answer or a 5xx, is sent once more (``sources.end_reads``);
the log tail asks for about as many lines as it keeps (``sources.pod_logs``), so that a large
healthy log is not too long to come within the read timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from reconciler.core.job_pods import Stuck, has_run, story_container, story_pod, stuck_story
from reconciler.core.jobs import decided, finished, main_container, outcome_of, with_pod
from reconciler.core.runs import RunStatus
from reconciler.core.status import parse_time
from reconciler.runner.base import Outcome
from reconciler.runner.job_create import SHUTDOWN
from reconciler.runner.job_delete import delete_job, retrying

if TYPE_CHECKING:
    from reconciler.runner.job_attempt import Job, JobRun, PodReads

log = logging.getLogger("crontask.runner")

DEADLINE_EXCEEDED = "DeadlineExceeded"
LOOK_FLOOR = 1.0  # seconds: the pods of a pending Job are never looked at more often
LOOK_SPREAD = 0.25  # the first look comes up to this share of an interval sooner, at random
# An end's reads (its pods, up to two lists, and its log tail), all together, in seconds: with
# a stop's delete (``DELETE_TIMEOUT``, 10 + 15 s) at most 45 s, within ``Replace``'s 60 s. One
# that hangs ends them at its read timeout (15 s; nothing after a failed read is read).
STOP_READS_WAIT: Final = 20.0
# When a delete refused for good (403: no right to delete Jobs, a webhook that denies it) is
# tried again (``job_delete.retrying``): nothing tries it in the background, but the task's
# next slot adopts the Job and stops it again, and every resync deletes a live Job whose run's
# record is final (``controller.jobs``). Until then it counts as running (``Replace`` skips).
_AGAIN = "at the task's next slot and at every resync, until it is gone"


class Pending:
    """What one attempt saw of its Job's pods while none had run: whether one has run since
    (then nothing more is looked at), and the story of the last stuck one (``stuck_story``)
    with when it was seen (``seen_at``, on the monotonic clock).

    The pods are looked at (one LIST) only while the Job has a deadline (its
    ``activeDeadlineSeconds`` or the task's ``timeoutSeconds``: without one, no timeout needs
    the story), has an active pod that is not ready, and no pod of it has run: every
    ``verify_seconds``, or every quarter of the deadline if sooner (never more often than
    :data:`LOOK_FLOOR`), so that a pod stuck until the deadline deletes it was seen stuck
    before. The first look waits about one interval (a pod just made has not met the scheduler
    yet), up to :data:`LOOK_SPREAD` of it sooner at random, so that the Jobs of one slot are
    not all looked at together. Once more when the cluster decides that the Job ran out of
    time (``FailureTarget``, ``DeadlineExceeded``): its pods may still be there, and the last
    look may be an interval old (a pod scheduled since would be told "never scheduled")."""

    def __init__(self) -> None:
        self.ran = False
        self.stuck: Stuck | None = None
        self.seen_at: float | None = None  # when the pods told ``stuck`` (time.monotonic)
        self._next: float | None = None  # on the event loop's clock
        self._decision_seen = False

    def saw(self, pods: list[Job], main: str | None = None) -> None:
        """Learn from the pods as listed now (none listed: they are gone, nothing learned);
        ``main`` is the Job's main container (``core.jobs.main_container``)."""
        if any(has_run(pod, main) for pod in pods):
            self.ran, self.stuck = True, None
        elif pods:
            self.stuck, self.seen_at = stuck_story(pods, main), time.monotonic()

    def due(self, job: Job, now: float, interval: float | None) -> float | None:
        """Seconds until the pods are to be looked at (<= 0: now); None if they are not.
        ``interval`` is :meth:`interval`'s (None: the Job has no deadline)."""
        status = job.get("status") or {}
        if _count(status, "ready") or _count(status, "succeeded"):
            self.ran, self.stuck = True, None  # the Job controller saw a pod run
        if self.ran or interval is None:
            return None
        if (ended := decided(job)) is not None:
            if self._decision_seen or ended[1] != DEADLINE_EXCEEDED:
                return None  # only a deadline's end tells the story
            self._decision_seen = True
            return 0.0  # the last look, while the pods may still be there
        if _count(status, "active") == 0:
            return None
        if self._next is None:
            spread = random.uniform(-LOOK_SPREAD, 0)  # noqa: S311 (no secret)
            self._next = now + interval * (1 + spread)
        return self._next - now

    def looked(self, now: float, interval: float) -> None:
        self._next = now + interval

    @staticmethod
    def interval(job: Job, timeout: float | None, verify: float) -> float | None:
        """Seconds between two looks (the class docstring), None if the Job has no deadline:
        its own ``activeDeadlineSeconds`` if it has one, else ``timeoutSeconds``."""
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        if isinstance(deadline, bool) or not isinstance(deadline, int | float):
            deadline = timeout
        if deadline is None:
            return None
        return min(verify, max(LOOK_FLOOR, deadline / 4))


def _count(status: Job, field: str) -> int:
    value = status.get(field)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def never_ran(run: JobRun, reason: str | None, message: str) -> tuple[str | None, str]:
    """The reason and message of a timed-out attempt (``reason`` and ``message``, a timeout's)
    whose pods never ran, as the attempt saw them (:class:`Pending`): the stuck pod's reason,
    and what befell it added to the message; else they are unchanged."""
    pending, stuck = run.pending, run.pending.stuck
    if reason != DEADLINE_EXCEEDED or pending.ran or stuck is None:
        return reason, message
    # The last look may be an interval old: the pod may have been scheduled since.
    ago = max(0, round(time.monotonic() - (pending.seen_at or time.monotonic())))
    return stuck.reason, f"{message}; its pod {stuck.what} (as seen {ago}s before the end): " + (
        stuck.detail
    )


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
    """The outcome of a Job that ended: ``ended_at`` is when, by the Job's own account
    (``completionTime``, else its terminal condition's ``lastTransitionTime``, else its
    decided one's; None if it says none), on the API server's clock: it may have ended while no
    crontask ran, or while this one could not see it."""

    ended_at: datetime | None = None
    # Followed from its creation (not adopted): its end as seen here is the precise one, unless
    # it came long after the Job's own (``execution._complete``).
    followed: bool = False
    # How long it ran by the Job's own times (its end less its creationTimestamp, both on the
    # API server's clock, whose offset from this crontask's they cancel); None if it says none.
    ran_for: timedelta | None = None
    # On this crontask's clock, when the Job's first create was sent and when the Job came
    # back (answered, a 409 of a create sent again, found by the read after one unanswered):
    # it was created between the two (None: not created here). A create answered late, or
    # held and written later, puts its creation after the run's start.
    created_within: tuple[datetime, datetime] | None = None


def _ran_for(job: Job) -> timedelta | None:
    created = parse_time((job.get("metadata") or {}).get("creationTimestamp"))
    ended = _ended_at(job)
    return None if created is None or ended is None else max(ended - created, timedelta(0))


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
    cached = run.runner.cluster.cached(details.namespace, details.name)
    if cached is not None and job_uid(cached) == run.uid and finished(cached) is not None:
        # It ended before the attempt took its end in (the watch told both in one turn, or
        # while the attempt looked at its pods): a succeeded Job is no failed, replaced run.
        return await conclude(run, cached)
    read = await _stop_evidence(run, cached)
    if not isinstance(read, tuple):
        return await conclude(run, read)  # it ended while the watch could not tell
    output, pod, error = read
    details = with_pod(details, pod, error)
    deleted = await _delete(run)
    if isinstance(deleted, str) and retrying(run.uid):
        what = f"could not be deleted yet ({deleted}); crontask tries again until it is"
    elif isinstance(deleted, str):
        what = f"could not be deleted yet ({deleted}); crontask tries again {_AGAIN}"
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
    output, pod, error = await _bounded_evidence(run, cached, job)
    details = with_pod(details, pod, error)
    deleted = await _delete(run)
    if isinstance(deleted, str) and retrying(run.uid):
        done = f" could not delete it yet ({deleted}) and tries again until it can"
    elif isinstance(deleted, str):
        done = f" could not delete it yet ({deleted}) and tries again {_AGAIN}"
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
    reason, message = never_ran(run, DEADLINE_EXCEEDED, message)
    if isinstance(deleted, str):
        # Still there: a crontask that adopts it stops it again by this reason (the
        # dispatcher's runs stopped for good); the message still says what befell its pod.
        reason = DEADLINE_EXCEEDED
    return Outcome(RunStatus.TIMED_OUT, None, reason, message, output, job=details)


async def _delete(run: JobRun) -> bool | str:
    """Delete the Job (``runner.job_delete``, which tries again if it must)."""
    return await delete_job(run.runner, run.where, run.uid, run.record.id)


async def _bounded_evidence(
    run: JobRun, job: Job | None, told: Job | None = None
) -> tuple[str, Job | None, str | None]:
    """:func:`evidence` for the run's end: read with ``stop_reads`` (each read sent once, or
    again if it failed at once, and given up soon), all of it within
    :data:`STOP_READS_WAIT` (the module docstring)."""
    try:
        async with asyncio.timeout(STOP_READS_WAIT):
            return await evidence(run, job, told, reads=run.runner.stop_reads)
    except TimeoutError:
        return _not_read()


async def _stop_evidence(run: JobRun, job: Job | None) -> tuple[str, Job | None, str | None] | Job:
    """A stop's :func:`_bounded_evidence`, the Job read first, within the same bound: the watch
    may be behind (down, or slow). The Job, if it has ended: its outcome is the attempt's (its
    evidence is read then as any end's); a read that fails leaves ``job``, the watch's."""
    reads = run.runner.stop_reads
    try:
        async with asyncio.timeout(STOP_READS_WAIT):
            with contextlib.suppress(Exception):
                now = await reads.get(run.where.namespace, run.where.name) if run.uid else None
                if now is not None and job_uid(now) == run.uid:
                    if finished(now) is not None:
                        return now
                    job = now
            return await evidence(run, job, reads=reads)
    except TimeoutError:
        return _not_read()


def _not_read() -> tuple[str, Job | None, str | None]:
    return "", None, f"the Job's pods and log were not read within {STOP_READS_WAIT:g}s"


async def evidence(
    run: JobRun, job: Job | None, told: Job | None = None, *, reads: PodReads | None = None
) -> tuple[str, Job | None, str | None]:
    """The main container's log tail, the pod that tells the story of ``told`` (``job``
    unless given: the outcome may be one a GET saw before the watch did), and why the log
    could not be read; read with ``reads`` (None: the cluster's). It never raises: what
    comes after it (a stop's or the backstop's delete) must happen whatever the pods are
    like."""
    if job is None or not run.uid:
        return "", None, "the Job is gone"
    try:
        return await _evidence(run, job, told or job, reads or run.runner.cluster)
    except Exception as err:  # a pod or Job of a shape nothing expected
        log.warning("cannot read the Job's pods", extra={"fields": {"error": repr(err)}})
        return "", None, f"cannot read the Job's pods: {err!r}"


async def _evidence(
    run: JobRun, job: Job, told: Job, cluster: PodReads
) -> tuple[str, Job | None, str | None]:
    namespace = run.where.namespace
    assert run.uid
    try:
        pods = await cluster.pods(namespace, run.uid)
    except Exception as err:
        return "", None, str(err)
    main = main_container(job)
    run.pending.saw(pods, main)
    pod = _story(told, pods)
    if pod is None:
        return "", None, "the Job has no pod (none was started, or they were deleted)"
    if main is None:
        return "", pod, "the Job's pod template names no container"
    name = str((pod.get("metadata") or {}).get("name"))
    kind, reason, _ = decided(told) or (None, None, None)
    container = story_container(pod, kind, main, reason)
    try:
        output = await cluster.log_tail(namespace, name, container, run.runner.output_limit)
    except Exception as err:
        return "", pod, str(err)
    return output, pod, None


async def conclude(run: JobRun, job: Job) -> Outcome:
    run.runner.forget(run.uid)  # over: a watch cache that lags does not make it run again
    output, pod, error = await _bounded_evidence(run, job)
    ended = outcome_of(job, pod, main=main_container(job), log_error=error)
    reason, message = ended.reason, ended.message
    if ended.status is RunStatus.TIMED_OUT:
        reason, message = never_ran(run, reason, message)
    said = (ended.status, ended.exit_code, reason, message, output)
    # It ended when the Job says, followed from its creation or adopted alike: crontask may
    # have seen the end long after it (an API outage, a watch gap, a restart). The dispatcher
    # bounds that time by the run's start and by now, the Job's being on another clock.
    followed, at = run.definition is not None, _ended_at(job)
    return JobEnd(
        *said,
        job=ended.details,
        ended_at=at,
        followed=followed,
        ran_for=_ran_for(job),
        created_within=(
            None
            if run.create_sent is None or run.created_here is None
            else (run.create_sent, run.created_here)
        ),
    )
