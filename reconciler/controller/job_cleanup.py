"""The clean-up of finished Jobs, for the :class:`~reconciler.controller.jobs.JobSupervisor`.

Contract:

- :meth:`JobCleanup.clean` deletes (Background, uid precondition) the finished Jobs beyond
  ``successfulRunsHistoryLimit`` / ``failedRunsHistoryLimit`` of the tasks asked about (the
  newest runs kept, as CronJob does; a run counts as its latest attempt, its attempts' Jobs go
  together), and every finished Job of a task no source declares any more whose run this run
  store records (``_recorded``: a crontask sharing the Job namespace has its own). A Job whose
  run is still followed, or ``running`` in the store, is never deleted: its log and outcome are
  read first. Nothing of a removed task is deleted while the sources' empty-set guard holds
  removals back (``holding``), nor a removed CronTask's (``JobRunner.collected``: its deletion
  decides, ``--cascade=orphan`` keeps them). Only the tasks this replica owns are judged, and
  only Jobs with the ``crontask.dev/run-id`` label are seen; nor is one controlled by a
  CronTask that is not the task's owner in force (``core.jobs.run_in``, ``JobWatch.jobs_of``).
- A Job whose delete fails (the API server refuses it: no right to delete Jobs, a webhook that
  denies it; or does not answer) is left for the next pass, and the others are deleted all the
  same: one such Job must not keep every later task's Jobs, in the order of their keys, past
  their limits. The failure comes again with every pass (each resync, each run's end): it is one
  warning per namespace and answer every ``REFUSAL_EVERY`` seconds (``RefusalLog``), naming the
  RBAC rule after a ``403`` (``missing="jobs: delete in namespace X"``), with how many were not
  logged (``suppressed``). It raises only what is not a Job API error (the run store's).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import Reconciler
from reconciler.core.desired import Definition
from reconciler.core.jobs import finished, is_deleting, run_of
from reconciler.runner.job import JobRunner
from reconciler.sinks.kubernetes_refusals import RefusalLog, refusal
from reconciler.sources.kubernetes_jobs import JobApiError, JobWatch
from reconciler.store.base import RunStore

log = logging.getLogger("crontask.jobs")
THEIRS_MAX = 10_000  # another crontask's Jobs remembered (``_theirs``), not read each pass


class JobCleanup:
    """Finished Jobs beyond their task's limits, and a removed task's (module docstring)."""

    def __init__(
        self,
        watch: JobWatch,
        runner: JobRunner,
        *,
        store: RunStore,
        dispatcher: Dispatcher,
        reconciler: Reconciler,
    ) -> None:
        self.watch = watch
        self.runner = runner
        self.store = store
        self.dispatcher = dispatcher
        self.reconciler = reconciler
        self._theirs: set[str] = set()  # uids of removed tasks' Jobs not in the store: left
        self._refusals = RefusalLog()  # by (namespace, status): a refused delete comes again

    async def clean(self, keys: Collection[str] | None, *, holding: bool) -> int:
        """Delete the finished Jobs beyond the limits of ``keys`` (None: every task with Jobs).
        ``holding``: the last pass held removals back. Returns how many were deleted."""
        targets = self.watch.tasks() if keys is None else set(keys)
        targets = {key for key in targets if self.reconciler.mine(key)}
        if not targets:
            return 0
        running = await self.dispatcher.recorder.call(self.store.running)
        busy = {r.id for r in running} | {
            r.id for key in targets for r in self.dispatcher.active(key)
        }
        declared = self.reconciler.desired.tasks
        doomed = {
            key: self._doomed(key, declared.get(key), busy, holding) for key in sorted(targets)
        }
        removed = [job for key, jobs in doomed.items() if key not in declared for job in jobs]
        if removed:
            ids = {_run_id(job) for job in removed if _uid(job) not in self._theirs}
            ours = await self.dispatcher.recorder.call(_recorded, self.store, ids)
            for key in doomed:
                if key not in declared:
                    doomed[key] = [job for job in doomed[key] if _run_id(job) in ours]
            if len(self._theirs) > THEIRS_MAX:  # each looked up once more: most are gone
                self._theirs.clear()
            self._theirs |= {_uid(job) for job in removed if _run_id(job) not in ours}
        deleted = 0
        for key, jobs in doomed.items():
            for job in jobs:
                if await self._delete(key, job):
                    deleted += 1
        return deleted

    async def _delete(self, key: str, job: dict[str, Any]) -> bool:
        meta = job.get("metadata") or {}
        namespace, name = meta["namespace"], meta["name"]
        try:
            deleted = await self.watch.delete(namespace, name, meta.get("uid"))
        except JobApiError as err:
            # Left for the next pass; the other Jobs go all the same (module docstring).
            suppressed = self._refusals.due((namespace, err.status))
            if suppressed is not None:
                fields = {
                    "task": key,
                    "job": name,
                    **refusal(err, "jobs: delete", namespace),
                    "error": str(err),
                    "suppressed": suppressed,
                }
                log.warning(
                    "cannot delete a Job beyond the history limits; the next pass tries again",
                    extra={"fields": fields},
                )
            return False
        if deleted:
            log.info("job deleted", extra={"fields": {"task": key, "job": name, "why": "history"}})
        return deleted

    def _doomed(
        self, key: str, definition: Definition | None, busy: set[str], holding: bool
    ) -> list[dict[str, Any]]:
        done: list[dict[str, Any]] = []
        for job in self.watch.jobs_of(key):
            run = run_of(job)
            if run is None or run.run_id in busy or is_deleting(job) or finished(job) is None:
                continue
            done.append(job)
        if definition is None:
            # A removed task: its finished Jobs go (not while the sources' empty-set guard
            # holds removals back: the task may not be removed at all), unless they were a
            # CronTask's: its deletion decided their fate (--cascade=orphan keeps them).
            return [] if holding or self.runner.collected(key) else done
        # As the run history does: a run (all its attempts' Jobs) counts as its latest
        # attempt says, and goes whole; the newest runs are kept.
        runs: dict[str, list[dict[str, Any]]] = {}
        for job in done:
            runs.setdefault(_run_id(job), []).append(job)
        spec = definition.task.spec
        left = {
            "Complete": spec.successful_runs_history_limit,
            "Failed": spec.failed_runs_history_limit,
        }
        doomed: list[dict[str, Any]] = []
        for group in sorted(runs.values(), key=lambda g: max(map(_order, g)), reverse=True):
            latest = max(group, key=_order)
            kind = (finished(latest) or ("Failed",))[0]
            if left[kind] > 0:
                left[kind] -= 1
            else:
                doomed.extend(group)
        return doomed


def _recorded(store: RunStore, ids: Collection[str]) -> set[str]:
    """Blocking. The runs of ``ids`` the store records: a removed task's Jobs go only if their
    run is this crontask's (any replica's); another crontask sharing the namespace has its own."""
    return {run for run in ids if store.get(run) is not None}


def _uid(job: dict[str, Any]) -> str:
    return str((job.get("metadata") or {}).get("uid"))


def _run_id(job: dict[str, Any]) -> str:
    run = run_of(job)
    return run.run_id if run is not None else ""


def _order(job: dict[str, Any]) -> tuple[datetime, int]:
    run = run_of(job)
    if run is None:
        return datetime.min.replace(tzinfo=UTC), 0
    return run.scheduled_at, run.attempt
