"""The clean-up of finished Jobs, for the :class:`~reconciler.controller.jobs.JobSupervisor`.

Contract:

- :meth:`JobCleanup.clean` deletes (Background, uid precondition) the finished Jobs beyond
  ``successfulRunsHistoryLimit`` / ``failedRunsHistoryLimit`` of the tasks asked about (the
  newest runs kept, as CronJob does; a run counts as its latest attempt, its attempts' Jobs go
  together), and every finished Job of a task no source declares any more whose run this run
  store records (``_recorded``: a crontask sharing the Job namespace has its own). A Job whose
  run is still followed, or ``running`` in the store, is never deleted: its log and outcome
  are read first. So go, by the same run store check, the finished Jobs that nothing controls
  of a task a CronTask holds (``JobWatch.former_jobs``: made while a folder, git or the API
  held the key, or kept by a CronTask deleted with ``--cascade=orphan`` and then applied
  again): never the CronTask's runs (anyone who may create a Job there can make one), and left
  alone they would stay for good, as its history limits do not count them and its key is
  declared. Nothing of a removed task, nor of those, is deleted while the sources' empty-set
  guard holds removals back, nor a removed CronTask's (``JobRunner.collected``: its deletion
  decides, ``--cascade=orphan`` keeps them). What is declared and whether removals are held
  are one pair, the last applied pass's (:meth:`JobCleanup.passed`; held until the first, and
  while no pass has declared a task yet, unless ``--allow-empty``), read after the wait for
  the store. Only the tasks this replica owns are judged, and only Jobs with the
  ``crontask.dev/run-id`` label are seen; nor is one controlled by a CronTask that is not the
  task's owner in force (``core.jobs.run_in``, ``JobWatch.jobs_of``).
- A Job whose delete fails (the API server refuses it: no right to delete Jobs, a webhook that
  denies it; or does not answer) is left for the next pass. After an answer about the
  namespace (RBAC's ``403``, ``429``, a server error, no answer) so are the rest of that
  namespace's Jobs in this pass; the other namespaces' go all the same. A namespace that
  refuses one Job most likely refuses the next: trying every Job left at every pass, their
  number growing by one a run while none could go, sent DELETEs as the square of the runs, and
  held the housekeeping as long as each failure took. Admission's denial (a webhook, a policy)
  is about that Job: the pass goes on to the next (stopping there, K such Jobs held the others
  K passes after a restart, which forgets them). Jobs whose delete failed are tried after the
  others at the next pass, the one tried longest ago first, and the first of them that fails
  again, however, leaves the namespace for the pass: one tried in turn a pass, not one more
  DELETE a Job denied for good, nor one Job that may go now held behind one denied for good.
  The failure comes again with every pass (each resync, each run's end): it is one warning
  per namespace, answer and kind (beyond the limits, removed, former) every
  ``REFUSAL_EVERY`` seconds (``RefusalLog``), naming the RBAC rule after a ``403``
  (``missing="jobs: delete in namespace X"``) unless admission denied it (a webhook or a
  policy: ``request=``), with how many were not logged (``suppressed``). It raises only what
  is not a Job API error (the run store's).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import PassResult, Reconciler
from reconciler.core.desired import Definition
from reconciler.core.jobs import finished, is_deleting, run_of
from reconciler.runner.job import JobRunner
from reconciler.sinks.refusals import RefusalLog, refusal
from reconciler.sources.kubernetes_jobs import JobApiError, JobWatch
from reconciler.store.base import RunStore

log = logging.getLogger("crontask.jobs")
THEIRS_MAX = 10_000  # another crontask's Jobs remembered (``_theirs``), not read each pass
_WHOSE = {  # a Job's, in the warning that its delete failed, by why it goes
    "history": "beyond the history limits",
    "removed": "of a task no source declares any more",
    "former": "its task made before its CronTask held its key",
}


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
        self._refusals = RefusalLog()  # by (namespace, status, admission, why): comes again
        # uids of Jobs whose delete failed -> the pass that last tried them: tried last, the
        # one tried longest ago first.
        self._failed: dict[str, int] = {}
        self._passes = 0
        # Whether a pass has declared a task: until one has, an empty read holds (passed()).
        self._declared = False
        # The last applied pass's declared tasks and whether it held removals back, one pair:
        # read apart, a pass that read every source empty landing between the two reads paired
        # "nothing declared" with "nothing held", and every finished Job in the store went.
        # Before the first pass nothing is known to be removed.
        self._pass: tuple[Mapping[str, Definition], bool] = ({}, True)

    def passed(self, result: PassResult) -> None:
        """A pass applied (``result.ok``): what it declared, whether it held removals back."""
        tasks = result.desired.tasks
        # Nothing of a removed task is deleted while every source reads empty. The plan holds
        # the removals of the tasks scheduled; at a start the scheduler holds none, so a first
        # pass that reads a folder or a checkout empty (a failed mount) held nothing, and
        # every finished Job the store records went. Until a pass has declared a task, no
        # task counts as removed (with --allow-empty an empty read is what the user made, and
        # so is one of sources whose empty read is deliberate: the API's, the cluster's);
        # after that the plan decides (an API task deleted, the last one too, is removed).
        self._declared = self._declared or bool(tasks)
        deliberate = all(source.authoritative for source in self.reconciler.sources)
        empty = not (self._declared or self.reconciler.allow_empty or deliberate)
        self._pass = (tasks, empty or bool(result.plan.held_removals))

    async def clean(self, keys: Collection[str] | None) -> int:
        """Delete the finished Jobs beyond the limits of ``keys`` (None: every task with Jobs).
        Returns how many were deleted."""
        targets = self.watch.tasks() if keys is None else set(keys)
        targets = {key for key in targets if self.reconciler.mine(key)}
        if not targets:
            return 0
        running = await self.dispatcher.recorder.call(self.store.running)
        busy = {r.id for r in running} | {
            r.id for key in targets for r in self.dispatcher.active(key)
        }
        # After the wait: a pass may have landed meanwhile (see __init__).
        declared, holding = self._pass
        doomed = {
            key: self._doomed(key, declared.get(key), busy, holding) for key in sorted(targets)
        }
        await self._former(doomed, declared)
        # A declared task's Jobs of an earlier source: as a removed task's, never while
        # removals are held (the folder task may be back at the next pass).
        earlier = {
            key: _done(self.watch.former_jobs(key), busy)
            for key in doomed
            if key in declared and not holding
        }
        await self._ours(doomed, earlier, declared)
        # Those that failed before go last, in every namespace, the one tried longest ago
        # first (module docstring).
        self._passes += 1
        jobs = [
            (key, job, "history" if key in declared else "removed")
            for key, found in doomed.items()
            for job in found
        ]
        jobs += [(key, job, "former") for key, found in earlier.items() for job in found]
        jobs.sort(key=lambda item: self._failed.get(_uid(item[1]), -1))
        deleted = 0
        failed: set[str] = set()  # the namespaces left for the next pass
        for key, job, why in jobs:
            namespace = job["metadata"]["namespace"]
            if namespace in failed:
                continue
            before = _uid(job) in self._failed
            gone = await self._delete(key, job, why)
            if isinstance(gone, JobApiError):
                if before or not _admission(gone):
                    failed.add(namespace)
            elif gone:
                deleted += 1
        return deleted

    async def _ours(
        self,
        doomed: dict[str, list[dict[str, Any]]],
        earlier: dict[str, list[dict[str, Any]]],
        declared: Mapping[str, Definition],
    ) -> None:
        """Keep, of a removed task's Jobs and of ``earlier``, those whose run this run store
        records: no ownerReference tells this crontask's from another's."""
        removed = [job for key, jobs in doomed.items() if key not in declared for job in jobs]
        unsure = removed + [job for jobs in earlier.values() for job in jobs]
        if not unsure:
            return
        ids = {_run_id(job) for job in unsure if _uid(job) not in self._theirs}
        ours = await self.dispatcher.recorder.call(_recorded, self.store, ids)
        for key in doomed:
            if key not in declared:
                doomed[key] = [job for job in doomed[key] if _run_id(job) in ours]
        for key in earlier:
            earlier[key] = [job for job in earlier[key] if _run_id(job) in ours]
        if len(self._theirs) > THEIRS_MAX:  # each looked up once more: most are gone
            self._theirs.clear()
        self._theirs |= {_uid(job) for job in unsure if _run_id(job) not in ours}

    async def _former(
        self, doomed: dict[str, list[dict[str, Any]]], declared: Mapping[str, Definition]
    ) -> None:
        """Of a declared task that no longer runs Jobs (its ``job`` replaced by a ``command``
        or ``http``), only the finished Jobs whose run the history no longer keeps (pruned by
        the same limits, or by age) go: its newer runs made none, so counting its Jobs alone
        never put one past the limits."""
        keys = [key for key in doomed if _former_job_task(declared.get(key))]
        if not keys:
            return
        ids = {_run_id(job) for key in keys for job in doomed[key]}
        kept = await self.dispatcher.recorder.call(_recorded, self.store, ids)
        for key in keys:
            doomed[key] = [job for job in doomed[key] if _run_id(job) not in kept]

    async def _delete(self, key: str, job: dict[str, Any], why: str) -> bool | JobApiError:
        """True if deleted, False if gone already, the error if the delete failed (logged)."""
        meta = job.get("metadata") or {}
        namespace, name, uid = meta["namespace"], meta["name"], _uid(job)
        try:
            deleted = await self.watch.delete(namespace, name, meta.get("uid"))
        except JobApiError as err:
            if len(self._failed) >= THEIRS_MAX:  # the oldest may be gone: tried in turn again
                self._failed.clear()
            self._failed[uid] = self._passes
            admission = _admission(err)
            suppressed = self._refusals.due((namespace, err.status, admission, why))
            if suppressed is not None:
                fields = refusal(err, "jobs: delete", namespace)
                if admission:  # its namespace's rules are not what is missing
                    fields["request"] = fields.pop("missing")
                fields = {
                    "task": key,
                    "job": name,
                    **fields,
                    "error": str(err),
                    "suppressed": suppressed,
                }
                whose = _WHOSE[why]
                waits = "it waits" if admission else "it and its namespace's others wait"
                log.warning(
                    f"cannot delete a Job {whose}; {waits} for the next pass",
                    extra={"fields": fields},
                )
            return err
        self._failed.pop(uid, None)
        if deleted:
            log.info("job deleted", extra={"fields": {"task": key, "job": name, "why": why}})
        return deleted

    def _doomed(
        self, key: str, definition: Definition | None, busy: set[str], holding: bool
    ) -> list[dict[str, Any]]:
        done = _done(self.watch.jobs_of(key), busy)
        if definition is None:
            # A removed task: its finished Jobs go (not while the sources' empty-set guard
            # holds removals back: the task may not be removed at all), unless they were a
            # CronTask's: its deletion decided their fate (--cascade=orphan keeps them).
            return [] if holding or self.runner.collected(key) else done
        if _former_job_task(definition):
            return done  # those whose run the history still keeps are left (_former)
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


def _done(jobs: Iterable[dict[str, Any]], busy: set[str]) -> list[dict[str, Any]]:
    """Those of ``jobs`` finished and not being deleted whose run is not ``busy``."""
    done: list[dict[str, Any]] = []
    for job in jobs:
        run = run_of(job)
        if run is None or run.run_id in busy or is_deleting(job) or finished(job) is None:
            continue
        done.append(job)
    return done


def _former_job_task(definition: Definition | None) -> bool:
    """Whether ``definition`` is declared and makes no Job: its Jobs are of earlier runs."""
    return definition is not None and definition.task.spec.job is None


def _admission(err: JobApiError) -> bool:
    """A ``403`` that admission gave (a webhook or a policy that "denied" the request), not
    authorization ("cannot delete resource", as RBAC says): no RBAC rule is missing."""
    said = str(err)
    return err.status == 403 and "denied" in said and "cannot delete resource" not in said


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
