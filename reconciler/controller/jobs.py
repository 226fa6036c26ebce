"""The ``job`` action in the running crontask: its wiring, adoption and clean-up of Jobs.

- :func:`job_support` builds, from a Kubernetes connection, the Job watch
  (``sources.kubernetes_jobs``) and the action (``runner.job``); without a connection a crontask
  has no Jobs, and ``controller.job_options.WithoutJobs`` turns each ``job`` task into a
  definition error that says so (the other tasks of the same source are unaffected); this
  module, which imports the Kubernetes client, is then never loaded.
- :class:`JobSupervisor` is the component that starts the watch (listed before the first pass,
  so ``Forbid`` sees the Jobs that run in the cluster from the first slot on) and then, after
  every full pass and whenever a job task's run ends:

  * **adopts** the runs left ``running`` by an earlier crontask (or another replica) whose
    record names a Job, for the tasks this replica owns: the dispatcher follows each to its end
    (a Job that is gone by now ends its run ``interrupted``, reason ``JobGone``);
  * **deletes** (Background, uid precondition; logged once) the live Jobs of those tasks whose
    attempt's stored record is final: no run holds such a Job, and left alone it runs beside
    the run that replaced it (a ``Replace`` of an attempt whose create went unanswered as
    crontask stopped: ``runner.job_create``; a delete that could not be done then). One whose
    outcome is decided (``core.jobs.decided``), or not live with the same uid, is left. One
    whose delete fails, or the read before it (a ``401``/``403``: ``jobs: get`` missing), is
    tried again at the next pass (not while the delete is tried again in the background), its
    refusal said once;
  * **cleans up** finished Jobs beyond ``successfulRunsHistoryLimit`` /
    ``failedRunsHistoryLimit``, and a removed task's (``controller.job_cleanup``: a Job whose
    delete fails is left for the next pass, with the rest of its namespace's unless admission
    denied that Job alone, said once a while, and the other namespaces' go);
  * **lets go** of the Job watch of a namespace watched on demand (``JobWatch.let_go``) once
    no definition in force puts Jobs there, no run followed or ``running`` has its Job there,
    and its cache holds no Job of a task (one clean-up may still delete). The bound on such
    watches is on the namespaces in use, not on every one ever named.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping
from typing import Any, Final

from reconciler.aio import first_of, in_thread
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.job_cleanup import JobCleanup
from reconciler.controller.job_options import JobOptions
from reconciler.controller.manager import Ready
from reconciler.controller.reconcile import PassResult, Reconciler
from reconciler.controller.view import SourceStatus
from reconciler.core.desired import Definition, DesiredState
from reconciler.core.jobs import decided, is_deleting, job_namespace
from reconciler.core.runs import JobDetails, RunRecord
from reconciler.core.status import ObjectRef
from reconciler.runner.job import JobRunner
from reconciler.runner.job_delete import delete_job, retrying
from reconciler.sinks.refusals import refusal
from reconciler.sources.kubernetes import Connection
from reconciler.sources.kubernetes_jobs import JobApiError, JobWatch
from reconciler.sources.kubernetes_watch import Informer
from reconciler.store.base import RunStore, StoreClosed

log = logging.getLogger("crontask.jobs")

JOB_WATCHES: Final = "jobs"  # the kind of a Job watch's entry among the sources


@dataclasses.dataclass
class JobSupport:
    watch: JobWatch
    runner: JobRunner
    # The tasks last counted by ``_tasks_by_namespace``, and their counts (replaced
    # whole: a reader on another thread sees one pair or the other).
    _counted: tuple[Mapping[str, Definition], Counter[str]] | None = dataclasses.field(
        default=None, init=False
    )

    def outlives(self, record: RunRecord) -> bool:
        """A running record whose work may go on without its process: its Job's."""
        return record.job is not None

    def watch_states(self, desired: DesiredState) -> list[SourceStatus]:
        """The Job watches in use, each as ``/api/v1/sources`` shows a source (kind
        :data:`JOB_WATCHES`), with how many job tasks in force put their Jobs there: that of
        each namespace some do (with one cluster-wide watch, that one once any does), and,
        while any does, one failing with none (kept for the Jobs of a task since moved). A
        list or watch refused (a 403: no RBAC rule to list Jobs) is said in ``last_error`` and
        ``sync_failures`` (in a row, since ``failing_since``), not only in the log: the runs'
        ends come late meanwhile (read from their Jobs, not from the watch). From any thread:
        copies of what is held."""
        tasks = self._tasks_by_namespace(desired)
        return sorted(
            (
                SourceStatus(
                    kind=JOB_WATCHES,
                    location=f"Jobs in namespace {namespace}"
                    if namespace
                    else "Jobs, cluster-wide",
                    tasks=tasks[namespace] if namespace else tasks.total(),
                    errors=0,
                    last_error=informer.last_error,
                    sync_failures=informer.failures,
                    failing_since=informer.failing_since,
                )
                for namespace, informer in self.watch.informers().items()
                if tasks and (namespace is None or tasks[namespace] or informer.failures)
            ),
            key=lambda s: s.location,
        )

    def _tasks_by_namespace(self, desired: DesiredState) -> Counter[str]:
        """The job tasks of ``desired`` by the namespace of their Jobs: counted once a desired
        state's tasks (a pass that changed none keeps them: a walk of 100 000 definitions is 0.2 s,
        on every request otherwise)."""
        counted = self._counted
        if counted is None or counted[0] is not desired.tasks:
            namespace = self.runner.namespace
            tasks = Counter(
                job_namespace(d, namespace) for d in desired.tasks.values() if d.task.spec.job
            )
            self._counted = counted = (desired.tasks, tasks)
        return counted[1]


def job_support(
    connection: Connection,
    options: JobOptions,
    *,
    all_namespaces: bool,
    owner: Callable[[str], ObjectRef | None],
    resync_seconds: float,
    claimed: Callable[[str], bool] | None = None,
    listed: Callable[[str], ObjectRef | bool | None] = lambda key: None,
    stops_with: Collection[Informer] = (),
) -> JobSupport:
    """``claimed``: whether a definition is in force for a key, whichever source
    (``JobRunner.unclaimed``); None without the CronTask source. ``listed``: the CronTask of a
    key in the cluster, valid or not (``KubernetesSource.listed``). ``stops_with``: the
    CronTask watch, whose thread the Job watches' stop waits for with theirs."""
    namespace = options.namespace or connection.home
    watched = None if all_namespaces else {namespace, connection.watch or namespace}
    watch = JobWatch(connection.api, watched, resync_seconds=resync_seconds, stops_with=stops_with)
    runner = JobRunner(
        watch,
        namespace=namespace,
        owner=owner,
        claimed=claimed,
        listed=listed,
        stop_reads=watch.stop_reads(),  # each sent once: a stop holds its run's slot
    )
    return JobSupport(watch, runner)


class JobSupervisor:
    """The component (see the module docstring)."""

    name = "job-watch"

    def __init__(
        self,
        support: JobSupport,
        *,
        store: RunStore,
        dispatcher: Dispatcher,
        reconciler: Reconciler,
        wait: float = 30.0,
    ) -> None:
        self.watch = support.watch
        self.runner = support.runner
        self.store = store
        self.dispatcher = dispatcher
        self.reconciler = reconciler
        self.wait = wait
        self._all = asyncio.Event()  # adopt and clean everything (after a full pass)
        self._keys: set[str] = set()  # tasks whose Jobs may be over their limits
        self._some = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        # uids of the Jobs of final records, handled once (while the watch lists them live)
        self._released: set[str] = set()
        self._refused: set[str] = set()  # ...and of those whose refused delete was said
        self.cleanup = JobCleanup(
            self.watch, self.runner, store=store, dispatcher=dispatcher, reconciler=reconciler
        )
        self._places: dict[str, str] = {}  # job task in force -> where its Jobs go
        self._announced: set[str] = set()  # tasks whose runs said where their Job is
        reconciler.subscribe(self._after_pass)
        dispatcher.subscribe(self._after_run)
        dispatcher.subscribe_progress(self._announce)

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        await in_thread(self.watch.start, loop, self.wait)
        # The Jobs of runs an earlier crontask left running, in namespaces of their tasks' own
        # (spec.job.namespace): listed before the first pass, which decides the slots missed
        # meanwhile, so that Forbid and Replace see them there (the pass places the tasks after).
        for record in await in_thread(self.store.running):
            namespace = self.runner.remember(record)
            if namespace is not None and not self.watch.watched(namespace):
                await self._watch(namespace)
        ready()
        try:
            await self._housekeep(stop)
            await stop.wait()  # the watch follows the runs' Jobs until the runs have stopped
        finally:
            await in_thread(self.watch.stop)

    async def _housekeep(self, stop: asyncio.Event) -> None:
        """Adopt, release, clean up and let go, as asked, until ``stop`` or the run store's
        threads are closed: the runs stop before this component (the Jobs of runs ending in
        their shutdown grace are still cleaned up), and their stop closes the store's threads
        (``Recorder.close``); a housekeeping then would only meet a closed store, and the next
        start's first pass does it."""
        while True:
            await first_of(stop, self._all, self._some)
            if stop.is_set() or self.dispatcher.recorder.closed:
                break
            everything = self._all.is_set()
            self._all.clear()
            self._some.clear()
            keys, self._keys = self._keys, set()
            try:
                if everything:
                    await self.adopt()
                    await self.release()
                await self.clean(None if everything else keys)
            except (Exception, asyncio.CancelledError) as err:
                if self._stopped_under(err):
                    return
                log.exception("job housekeeping failed; the next pass tries again")
            # Apart: a clean-up that failed must not keep the watches no longer in use.
            try:
                await self.let_go()
            except (Exception, asyncio.CancelledError) as err:
                if self._stopped_under(err):
                    return
                log.exception("letting go of Job watches failed; the next pass tries again")
        log.debug("job housekeeping ends: crontask is stopping")

    def _stopped_under(self, error: BaseException) -> bool:
        """Whether ``error`` only says that the stop closed the run store's threads under a
        housekeeping under way (``Recorder.close``: a call after it raises StoreClosed, one
        still queued is cancelled): the end of the housekeeping, said at debug level. False:
        any other error, logged by the caller as before; a cancel of this task itself is
        raised again."""
        cancelled = isinstance(error, asyncio.CancelledError)
        if cancelled and ((task := asyncio.current_task()) is None or task.cancelling()):
            raise error  # this task was cancelled, not a store call
        if not self.dispatcher.recorder.closed:
            if cancelled:
                raise error
            return False
        if not cancelled and not isinstance(error, StoreClosed):
            return False  # a real fault, met as the stop went on
        log.debug(
            "job housekeeping under way when crontask stopped: left for the next start",
            extra={"fields": {"error": repr(error)}},
        )
        return True

    # -- triggers ----------------------------------------------------------------------------

    def _after_pass(self, result: PassResult) -> None:
        if not result.ok:
            return
        self.cleanup.passed(result)
        keys = result.desired.tasks.keys() if result.resync else (result.keys or ())
        if result.resync:
            self._places.clear()
        for key in keys:
            definition = result.desired.tasks.get(key)
            self._places.pop(key, None)
            if definition is not None and definition.task.spec.job is not None:
                # The namespaces Jobs go to are watched before the first of them is created,
                # and the runner knows where each task's Jobs are before it adopts any.
                namespace = self._places[key] = self.runner.place(definition)
                if not self.watch.watched(namespace):
                    self._spawn(self._watch(namespace))
        if result.resync:
            self._all.set()
        elif result.keys:
            self._keys |= set(result.keys)
            self._some.set()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)  # a reference until it is done
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, namespace: str) -> None:
        try:
            await self.watch.watch(namespace)
        except Exception as err:
            log.error(
                "cannot watch the Jobs of a namespace",
                extra={"fields": {"namespace": namespace, "error": str(err)}},
            )

    def _announce(self, record: RunRecord) -> None:
        # Said before the attempt watches the namespace and creates its Job there: a removed
        # task's run is known to follow a Job before the watch's cache shows it.
        if record.job is not None:
            self._announced.add(record.task)

    def _after_run(self, record: RunRecord) -> None:
        if record.job is not None and record.status.finished:
            self._keys.add(record.task)
            self._some.set()

    # -- watches -----------------------------------------------------------------------------

    def _spare(self) -> set[str]:
        """The namespaces watched on demand where no task in force puts Jobs and no run
        followed here has its Job."""
        spare = self.watch.idle(self.watch.namespaces() - set(self._places.values()))
        if not spare:
            return spare
        self._announced = {key for key in self._announced if self.dispatcher.active(key)}
        tasks = self._announced | self.watch.tasks() | set(self._places)
        followed = (r.job for key in tasks for r in self.dispatcher.active(key))
        return spare - {job.namespace for job in followed if job is not None}

    async def let_go(self) -> list[str]:
        """Stop the Job watches of the namespaces no longer in use (module docstring)."""
        if not self._spare():
            return []
        running = await self.dispatcher.recorder.call(self.store.running)
        held = {r.job.namespace for r in running if r.job is not None}
        # Looked at again after the wait: a pass may have placed a task there meanwhile.
        return await self.watch.let_go(self._spare() - held)

    # -- adoption ----------------------------------------------------------------------------

    async def adopt(self) -> int:
        return await adopt_runs(self.dispatcher, self.store, self.reconciler, self.watch.watch)

    async def release(self) -> int:
        """Delete the live Jobs of this replica's tasks whose run's record is final."""
        tasks = {key for key in self.watch.tasks() if self.reconciler.mine(key)}
        return await release_jobs(
            self.dispatcher, self.store, self.runner, tasks, self._released, self._refused
        )

    # -- clean-up ----------------------------------------------------------------------------

    async def clean(self, keys: Collection[str] | None) -> int:
        """Delete the finished Jobs beyond the limits of ``keys`` (None: every task with Jobs)."""
        return await self.cleanup.clean(keys)


async def adopt_runs(
    dispatcher: Dispatcher,
    store: RunStore,
    reconciler: Reconciler,
    watch: Callable[[str], Awaitable[None]],
) -> int:
    """Follow the job runs left ``running`` by someone else (an earlier crontask, a replica
    gone or not), for the tasks this replica owns; ``watch`` makes sure their namespace is
    watched first. Returns how many are followed from now on."""
    records = await dispatcher.recorder.call(store.running)
    owned = reconciler.scheduler.owned()
    adopted = 0
    for record in records:
        if record.job is None or record.owner == dispatcher.owner:
            continue
        if not reconciler.mine(record.task):
            continue
        if any(r.id == record.id for r in dispatcher.active(record.task)):
            continue
        try:
            await watch(record.job.namespace)
        except Exception as err:
            log.error(
                "cannot watch the Jobs of a namespace",
                extra={"fields": {"namespace": record.job.namespace, "error": str(err)}},
            )
            continue
        adopted += dispatcher.adopt(owned.get(record.task), record)
    return adopted


async def release_jobs(
    dispatcher: Dispatcher,
    store: RunStore,
    runner: JobRunner,
    tasks: Collection[str],
    handled: set[str],
    said: set[str],
) -> int:
    """Delete the live Jobs of ``tasks`` (``JobRunner.running``: crontask's, each a task's)
    whose attempt's stored record is final (module docstring). ``handled``: the uids of the
    Jobs already dealt with here (deleted, or found gone or ending), and added to, so each is
    deleted and logged once; ``said``: those whose refused delete was logged, the same way
    (and, as ``get:UID``, those whose refused read was: such a Job is not handled). Both
    drop, at each pass, the Jobs the watch no longer lists live for ``tasks`` (gone, ended,
    being deleted with no pod running, or of a task no longer here; one a finalizer holds with
    its pods running is listed, read once and found being deleted): they are looked at no
    more, and a Job deleted by someone else would otherwise stay there for the life of the
    process.
    A run followed here, or ``running`` in the store, holds its Job; no record (pruned, or
    never written while the store was away) says nothing: left alone. Returns how many went."""
    running = {(r.id, r.attempt) for r in await dispatcher.recorder.call(store.running)}
    deleted = 0
    listed: set[str] = set()
    for key in sorted(tasks):
        followed = {r.id for r in dispatcher.active(key)}
        for live in runner.running(key):
            where = live.job
            if where is None or not where.uid:
                continue
            listed.add(where.uid)
            if where.uid in handled:
                continue
            if retrying(where.uid):  # its delete is tried again in the background
                continue
            if live.id in followed or (live.id, live.attempt) in running:
                continue
            record = await dispatcher.recorder.call(store.get, live.id, live.attempt)
            if record is None or not record.status.finished:
                continue
            if await _release(runner, record, where, handled, said):
                deleted += 1
    # Listed again later (a watch that relists): looked at once more, said once more at most.
    handled.intersection_update(listed)
    said.difference_update({s for s in said if s.removeprefix("get:") not in listed})
    return deleted


async def _release(
    runner: JobRunner, record: RunRecord, where: JobDetails, handled: set[str], said: set[str]
) -> bool:
    """Delete the Job of the final ``record`` if the API server still has it live (the
    watch may lag behind an end the attempt read with a GET). True if deleted."""
    uid = str(where.uid)
    try:
        job = await runner.cluster.get(where.namespace, where.name)
    except Exception as err:
        # Not handled: crontask could not look (a 401/403: it may not read Jobs; no answer),
        # so the Job stays, looked at again at the next pass and deleted once it may be. A
        # refusal comes again at every pass: said once a Job, naming the rule it lacks.
        fields = {"run": record.id, "job": where.name, "error": str(err)}
        if isinstance(err, JobApiError) and err.status in (401, 403):
            if f"get:{uid}" in said:
                return False
            said.add(f"get:{uid}")
            fields.update(refusal(err, "jobs: get", where.namespace))
        log.warning(
            "cannot read a Job whose run is over, to delete it; tried again at the next pass",
            extra={"fields": fields},
        )
        return False
    said.discard(f"get:{uid}")
    meta = (job or {}).get("metadata") or {}
    if job is None or meta.get("uid") != where.uid or decided(job) or is_deleting(job):
        handled.add(uid)
        return False
    deleted = await delete_job(runner, where, where.uid, record.id)
    if isinstance(deleted, str):
        # Not handled: the next resync tries it again, as the run's record says (a delete
        # tried again in the background is left to it: release_jobs skips the Job meanwhile,
        # and a 403 ends that retry). Said once a Job: each resync meets the refusal again.
        if uid in said:
            return False
        said.add(uid)
    else:
        handled.add(uid)
        said.discard(uid)
    said_now = "job deleted" if deleted is True else "job gone already" if deleted is False else ""
    log.warning(
        (said_now or f"cannot delete a Job ({deleted})")
        + ": the record of its run is final, no run of crontask holds it",
        extra={
            "fields": {
                "task": record.task,
                "run": record.id,
                "attempt": record.attempt,
                "job": where.name,
                "status": str(record.status),
                "reason": record.reason,
            }
        },
    )
    return deleted is True
