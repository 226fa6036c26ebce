"""Deleting a Job crontask stopped for good (``Replace``, the ``timeoutSeconds`` backstop):
Background, its uid as precondition (a later Job of the same name is safe). A delete the API
server refuses or does not answer is tried again in the background, a growing pause apart, one
retry a Job, until it is answered, refused for good, or the Job ends or goes on its own: the
attempt's end is recorded at once; only the ``Replace`` run that stopped it waits for the
delete before it creates its own Job (``deletes_tried``, ``Dispatcher._run_attempt``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from reconciler.core.jobs import finished
from reconciler.core.runs import JobDetails

if TYPE_CHECKING:
    from reconciler.runner.job import JobRunner

log = logging.getLogger("crontask.runner")

# The deletes tried again in the background, by Job uid: one a Job (a Replace task whose every
# slot met the same undeletable Job started one more each time), and held here because the
# event loop keeps only weak references to its tasks.
_DELETES: dict[str, asyncio.Task[None]] = {}
# Answers to a delete that trying again does not change (no right to delete Jobs, an admission
# webhook that refuses): said once, and left to the next crontask that meets the Job.
_REFUSED_FOR_GOOD: Final = frozenset({400, 401, 403, 405, 422})


async def delete_job(runner: JobRunner, where: JobDetails, uid: str | None, run: str) -> bool | str:
    """Delete the Job ``where`` of run ``run``: True if deleted, False if it was gone already,
    else why the delete failed (then tried again in the background: the Job was stopped for
    good and its run's end is recorded, so nothing would try again later, and ``Replace``
    would leave two Jobs running, the backstop a stuck one)."""
    if uid in _DELETES:
        return "a delete of it is being tried again already"
    try:
        deleted = await runner.cluster.delete(where.namespace, where.name, uid)
    except Exception as err:
        again = getattr(err, "status", None) not in _REFUSED_FOR_GOOD
        if uid is not None and again and uid not in _DELETES:
            task = asyncio.get_running_loop().create_task(_later(runner, where, uid, run))
            _DELETES[uid] = task
            task.add_done_callback(lambda done: _DELETES.pop(uid, None))
        return str(err)
    runner.forget(uid)
    return deleted


def retrying(uid: str | None) -> bool:
    """Whether the delete of the Job ``uid`` is being tried again in the background: one the
    API server refused for good (``_REFUSED_FOR_GOOD``) is not, and waits for crontask to meet
    the Job again (the task's next slot adopts it and stops it again; every resync deletes a
    live Job whose run's record is final)."""
    return uid is not None and uid in _DELETES


def deletes_tried(uids: Iterable[str | None]) -> list[asyncio.Task[None]]:
    """The background deletes (``_later``) of the Jobs ``uids`` still being tried: each ends
    when its delete is answered or refused for good, or its Job has ended or gone (a
    ``Replace`` run waits for them before it creates its Job)."""
    found = (_DELETES.get(uid) for uid in uids if uid is not None)
    return [task for task in found if task is not None and not task.done()]


async def _later(runner: JobRunner, where: JobDetails, uid: str, run: str) -> None:
    """Try the delete again, with a growing pause (up to ``verify_seconds``), until the API
    server answers it, refuses it for good, or the Job has ended or gone on its own (the watch
    says so). Until then the Job counts as running (``Forbid`` waits for it): it may well be."""
    cluster, delay = runner.cluster, min(0.5, runner.verify_seconds)
    while True:
        await asyncio.sleep(delay)
        seen = cluster.cached(where.namespace, where.name)
        if seen is None or (seen.get("metadata") or {}).get("uid") != uid or finished(seen):
            return  # gone, or ended: no longer running, nothing to stop
        try:
            deleted = await cluster.delete(where.namespace, where.name, uid)
        except Exception as err:
            final = getattr(err, "status", None) in _REFUSED_FOR_GOOD
            log.warning(
                "cannot delete a Job crontask stopped; "
                + ("left to the next crontask that meets it" if final else "trying again"),
                extra={"fields": {"job": where.name, "error": str(err)}},
            )
            if final:
                return
            delay = min(delay * 2, runner.verify_seconds)
            continue
        runner.forget(uid)
        log.info(
            "job deleted" if deleted else "job gone already",
            extra={"fields": {"run": run, "job": where.name, "why": "stopped"}},
        )
        return
