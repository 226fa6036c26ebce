"""Creating the Job of one attempt (``runner.job_attempt``, step 2), and telling whether it was
made when the API server did not say.

- A create the API server *refuses* (a 4xx answer other than 409 and 429) wrote nothing: the
  attempt fails (``JobCreateFailed``; the task's retries may follow: nothing of it ran).
- A create that went *unanswered* (no answer, a 5xx, a 429) may have been written all the same
  (a timeout after the write). It is tried again (the name makes that safe: a second create of
  it is refused) a few times. Once one went unanswered, nothing is concluded before the name
  is read (the watch cache, else a GET asked again until the API server answers:
  :func:`read_job`): this attempt's Job there is followed as if the create had answered; no
  Job of this attempt there fails it (``JobCreateFailed``: its create went unanswered, and no
  Job of that name was there once the API server answered). Failing it without that answer
  would have its retry make a second Job of the slot (``<name>-2``) while the first runs, and
  record a failure for work that may succeed.
- A stop (``Replace``, shutdown) while creating: if a create may have been written, the name
  is read first (one GET: a stopped attempt does not wait). This attempt's Job there is
  returned, and the attempt stops it as any other (``Replace`` deletes it, shutdown detaches
  and its ``running`` record names it). None there: stopped before its Job was created. Still
  unknown (the read unanswered too): at shutdown the attempt detaches all the same (its record,
  ``running``, names the Job: the next start looks, and adopts it or records it gone, so a
  record never says ``interrupted`` while its Job lives); at any other stop the attempt ends
  (it is not retried: it was stopped) and the name is read again in the background until the
  API server answers, and this attempt's Job there is deleted (``runner.job_delete``). An
  answer that asking again does not change (401, 403) ends that, said once. Nothing awaits
  the read: a crontask that stops first leaves it to its next start (or the task's next
  owner), which deletes a live Job whose attempt's record is final (``controller.jobs``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import random
from typing import TYPE_CHECKING, Any, Final

from reconciler.core.desired import Definition
from reconciler.core.jobs import PREFIX
from reconciler.core.model import retry_hash
from reconciler.core.runs import RunStatus
from reconciler.runner.base import Outcome, failed
from reconciler.runner.job_delete import delete_job

if TYPE_CHECKING:
    from reconciler.runner.job_attempt import JobRun

log = logging.getLogger("crontask.runner")

Job = dict[str, Any]
SHUTDOWN: Final = "Shutdown"
CREATE_FAILED: Final = "JobCreateFailed"
NAME_TAKEN: Final = "JobNameTaken"
# The background reads of ``_delete_when_found``: the event loop keeps only weak references.
_FINDING: set[asyncio.Task[None]] = set()
# Answers to a read that asking again does not change: no right to read the Job.
_READ_REFUSED: Final = frozenset({401, 403})
# The reads of a Job woken by the API server's answer to another request are spread over this
# many seconds (``read_job``): the runs of a whole outage do not all ask at the same moment.
ANSWERED_SPREAD: Final = 1.0
# The definition a Job was made from (``core.model.retry_hash``): a run adopted after a restart
# is not retried under a definition changed meanwhile (``JobRunner.changed``).
DEFINITION_ANNOTATION: Final = PREFIX + "definition-hash"


def made_from(body: Job, definition: Definition) -> Job:
    """``body``, the Job of an attempt of ``definition``, says which definition it was."""
    body["metadata"].setdefault("annotations", {})[DEFINITION_ANNOTATION] = retry_hash(
        definition.task.spec
    )
    return body


class Unknown(enum.Enum):
    """What a read of the Job that was stopped before the API server answered gives."""

    UNKNOWN = "unknown"


async def read_job(run: JobRun) -> Job | Unknown | None:
    """The Job as the API server has it now (None: not found). An API server that does not
    answer is asked again until it does or the attempt is stopped (then
    :attr:`Unknown.UNKNOWN`): the Job may well be there, and nothing is concluded without it.
    Stopped before, it is asked once.

    The pause between two reads grows to ``verify_seconds``, each a random part (half to
    whole) of it, so that the runs an outage caught together do not ask together: during an
    outage, N runs ask about N / ``verify_seconds`` times a second in all. A read that went
    unanswered is woken early by the API server's next answer to any request through the
    cluster (another run's, the watch's: ``JobCluster.when_answered``), then sent within
    :data:`ANSWERED_SPREAD`: the API server is back, and a run that holds its slot (``Forbid``
    skipping the slots that come) learns its fate within a second or so, not at the end of a
    pause of up to ``verify_seconds``. A read that failed although it was woken (an API
    server that answers some requests, not this one) waits its whole next pause. A failure
    is logged once, and again when the error changes, not at every read."""
    cluster, where, delay = run.runner.cluster, run.where, 0.5
    said: str | None = None  # the error logged last
    woken = False
    while True:
        try:
            return await cluster.get(where.namespace, where.name)
        except Exception as err:
            error = err
        if str(error) != said:
            said = str(error)
            log.warning(
                "cannot read a Job; trying again (said again if the error changes)",
                extra={"fields": {"job": where.name, "error": said}},
            )
        # Taken at once (no await since the read): an answer from now on is not missed.
        wake = cluster.when_answered() if _unanswered(error) and not woken else None
        spread = random.uniform(0.0, ANSWERED_SPREAD)  # noqa: S311 - not a secret
        if await run.pause(delay * random.uniform(0.5, 1.0), wake, spread):  # noqa: S311
            return Unknown.UNKNOWN
        woken = wake is not None and wake.done() and not wake.cancelled()
        delay = min(delay * 2, run.runner.verify_seconds)


def _unanswered(err: Exception) -> bool:
    """Whether the create may have been written although it failed (module docstring)."""
    status = getattr(err, "status", None)
    return status is None or status == 429 or status >= 500


async def create_job(run: JobRun, body: Job) -> Job | Outcome:
    """Create the attempt's Job (module docstring): the Job, or the attempt's end."""
    runner, where = run.runner, run.where
    maybe_written = False
    last: Exception | None = None
    delay = 0.5
    for attempt in range(1, runner.create_attempts + 1):
        try:
            job, created = await runner.cluster.create(body)
        except Exception as err:
            last = err
            maybe_written = maybe_written or _unanswered(err)
            if not _unanswered(err) and getattr(err, "status", None) != 409:
                break  # refused: asking again changes nothing
            if attempt == runner.create_attempts or await run.pause(delay):
                break
            delay *= 2
            continue
        return _taken_or_ours(run, job, created)
    if maybe_written:
        return await _resolve(run, last)
    if run.stop_reason is not None:
        return failed(run.stop_reason, f"stopped before its Job was created: {last}")
    return failed(CREATE_FAILED, f"Job {where.name}: {last}")


def _taken_or_ours(run: JobRun, job: Job, created: bool) -> Job | Outcome:
    """The created Job, or the one of that name that a 409 found (adopted if it is this
    attempt's, created before a restart or by another replica for the same claim)."""
    where = run.where
    if not created and not run.ours(job):
        return failed(
            NAME_TAKEN,
            f"a Job named {where.name} exists in {where.namespace} and is not this "
            "run's (another run's or attempt's, or not made by crontask for this task); "
            "it was left alone",
        )
    if not created:
        log.info(
            "job adopted: created before for this attempt",
            extra={"fields": {"run": run.record.id, "job": where.name}},
        )
    return job


async def _resolve(run: JobRun, err: Exception | None) -> Job | Outcome:
    """A create may have been written: the attempt's name says whether it was."""
    where = run.where
    job = await read_job(run)
    if isinstance(job, Unknown):  # stopped unanswered: the watch may have seen it still
        job = run.runner.cluster.cached(where.namespace, where.name)
        if job is None or not run.ours(job):
            return _unknown(run, err)
    if job is not None and run.ours(job):
        log.info(
            "job created although its create went unanswered; following it",
            extra={"fields": {"run": run.record.id, "job": where.name}},
        )
        return job
    if run.stop_reason is not None:
        return failed(run.stop_reason, f"stopped before its Job was created: {err}")
    found = "no Job of that name was there" if job is None else "the one there was not this run's"
    message = (
        f"Job {where.name}: its create went unanswered, and {found} when the API server "
        f"answered (the last create: {err})"
    )
    return failed(CREATE_FAILED, message)


def _unknown(run: JobRun, err: Exception | None) -> Outcome:
    """Stopped while no one could say whether the Job was made (module docstring)."""
    reason, where = run.stop_reason, run.where
    assert reason is not None  # only a stop ends the read unanswered
    if reason == SHUTDOWN:
        return Outcome(
            RunStatus.RUNNING,
            None,
            reason,
            f"crontask stopped before the API server said whether Job {where.name} was "
            f"created ({err}); the next start looks for it, and adopts it or records it gone",
            "",
            job=where,
        )
    _delete_when_found(run)
    message = (
        f"stopped: {reason}; whether Job {where.name} was created is unknown (its create "
        f"and the read that followed went unanswered: {err}); crontask reads it again until "
        "the API server answers, and deletes it if it is there (after a restart, once its "
        "watch sees it)"
    )
    return dataclasses.replace(failed(reason, message), job=where)


def _delete_when_found(run: JobRun) -> None:
    task = asyncio.get_running_loop().create_task(_find_and_delete(run))
    _FINDING.add(task)
    task.add_done_callback(_FINDING.discard)


async def _find_and_delete(run: JobRun) -> None:
    """Read the stopped attempt's name, a growing pause apart, until the watch or the API
    server answers (a refusal for good ends it); delete this attempt's Job if it is there."""
    runner, where = run.runner, run.where
    delay = min(0.5, runner.verify_seconds)
    while True:
        job = runner.cluster.cached(where.namespace, where.name)
        if job is not None and run.ours(job):
            break
        try:
            job = await runner.cluster.get(where.namespace, where.name)
            break
        except Exception as err:
            final = getattr(err, "status", None) in _READ_REFUSED
            log.warning(
                "cannot read the Job of a stopped attempt; "
                + ("given up: refused for good" if final else "trying again"),
                extra={"fields": {"job": where.name, "error": str(err)}},
            )
            if final:
                return
        await asyncio.sleep(delay)
        delay = min(delay * 2, runner.verify_seconds)
    if job is None or not run.ours(job):
        return  # never made: nothing to stop
    uid = (job.get("metadata") or {}).get("uid")
    deleted = await delete_job(runner, where, uid, run.record.id)
    log.info(
        "job of a stopped attempt deleted once found",
        extra={"fields": {"run": run.record.id, "job": where.name, "deleted": deleted}},
    )
