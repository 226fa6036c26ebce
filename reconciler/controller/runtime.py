"""``crontask run``: the composition root. It builds the parts and hands them to the manager.

Start-up: open the run store, mark runs left ``running`` by a dead process as ``interrupted``,
build the sources, the scheduler and the dispatcher, then start the components in order (see
``controller.manager``): the Kubernetes writers, the Job watch, every source's own watch (the
CronTasks listed, the folder watch armed, the git revision in force known: before the first
pass reads), the replica membership (joined: the first pass knows what is ours), the runs, the
reconcile loop (its first, full pass starts the scheduler), housekeeping, and the HTTP server.
SIGTERM/SIGINT, or a component that fails, stop them in the reverse order: no new slots, running
runs get ``shutdown_grace`` to finish, then are stopped (recorded ``interrupted``, reason
Shutdown), and the last statuses are written.

Who reacts to what is wired here and only here: sources mark work on the queue, the reconcile
loop runs passes, pass observers (metrics, Kubernetes status) and run listeners (metrics, status,
the API's last runs) subscribe.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler import statedir
from reconciler.aio import close_threads, in_thread, open_threads
from reconciler.controller.cluster import Cluster, Timing
from reconciler.controller.components import Housekeeping, Http, Runs, SourceWatch
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.handover import Handover
from reconciler.controller.heartbeat import Heartbeat
from reconciler.controller.instance import instance_id, recover
from reconciler.controller.jobs import JobOptions, JobSupervisor, JobSupport, WithoutJobs
from reconciler.controller.kube import Kubernetes, connect_to, jobs
from reconciler.controller.loop import ReconcileLoop
from reconciler.controller.manager import ComponentFailed, Manager, StopBeforeReady
from reconciler.controller.queue import WorkQueue
from reconciler.controller.reconcile import PassResult, Reconciler
from reconciler.controller.service import Service
from reconciler.controller.view import RuntimeView
from reconciler.core.desired import Definition, SourceKind
from reconciler.core.plan import Operation
from reconciler.core.runs import RunRecord, RunStatus
from reconciler.host import usable_cores
from reconciler.membership.base import Announcement, Membership, Views
from reconciler.runner import reaper
from reconciler.runner.base import Action, Actions
from reconciler.runner.command import CommandRunner
from reconciler.runner.environment import TaskEnv, task_environment
from reconciler.runner.http import HttpRunner
from reconciler.scheduling.apscheduler import ApsScheduler
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from reconciler.sinks.notify_config import Notifications
from reconciler.sources.ahead import read_ahead
from reconciler.sources.api import ApiSource, ApiTaskFiles
from reconciler.sources.base import Source
from reconciler.sources.files import DirectorySource
from reconciler.sources.git import GitOptions, GitSource
from reconciler.sources.kubernetes import KubernetesOptions
from reconciler.sources.limits import DEFAULT_MAX_FILE_SIZE
from reconciler.store import open_store, sqlite_url
from reconciler.store.base import RunQuery, RunStore

log = logging.getLogger("crontask")


@dataclasses.dataclass(frozen=True)
class HaOptions:
    """``--ha``: this instance is one of several replicas sharing a PostgreSQL run store."""

    timing: Timing = dataclasses.field(default_factory=Timing)
    lease_namespace: str | None = None  # with Kubernetes; None: the pod's or kubeconfig's
    address: str | None = None  # where this replica's API listens, for the members view


@dataclasses.dataclass(frozen=True)
class Options:
    paths: list[Path] = dataclasses.field(default_factory=list)
    state_dir: Path = Path(".crontask")
    db_url: str | None = None
    git: GitOptions | None = None
    kubernetes: KubernetesOptions | None = None
    allow_empty: bool = False
    resync_seconds: float = 300.0
    shutdown_grace: float = 30.0
    kill_grace: float = 10.0
    task_env: TaskEnv = "minimal"
    pass_env: tuple[str, ...] = ()
    history_max_age: float | None = 30 * 86400.0  # seconds; None keeps records forever
    housekeeping_seconds: float = 600.0
    ha: HaOptions | None = None
    max_file_size: int = DEFAULT_MAX_FILE_SIZE  # bytes; larger definition files are refused
    metrics_per_task_histograms: bool = False
    jobs: JobOptions = dataclasses.field(default_factory=JobOptions)
    notifications: Notifications | None = None  # --notifications: receivers and routes
    page_url: str | None = None  # the status page's URL, for links in notifications


# Serves the HTTP interface (API, health, metrics) until the event is set. The CLI provides it,
# so that the controller layer never imports the web framework.
HttpServer = Callable[[RuntimeView, Metrics, asyncio.Event], Coroutine[Any, Any, None]]


@dataclasses.dataclass
class Parts:
    """Everything ``serve`` builds, before any of it runs."""

    me: str
    store: RunStore
    queue: WorkQueue
    dispatcher: Dispatcher
    scheduler: ApsScheduler
    metrics: Metrics
    sources: list[Source]
    git: GitSource | None
    reconciler: Reconciler
    control: ReconcileLoop
    service: Service
    task_env: Mapping[str, str]
    kube: Kubernetes | None = None
    jobs: JobSupport | None = None
    cluster: Cluster | None = None
    notifier: Notifier | None = None
    heartbeat: Heartbeat | None = None


def open_state(options: Options) -> RunStore:
    """The state directory made, or checked, as ``reconciler.statedir`` says, then the run
    store opened for writing. The state directory is left alone when nothing uses it (replicas
    keep the API's tasks in the shared store; without git they write nothing there).

    Raises ``statedir.Refused``, ValueError (a ``--db`` URL that names no store), OSError,
    StoreUnavailable, IncompatibleSchema: the CLI says each in one line."""
    uses_dir = options.ha is None or options.git is not None
    if uses_dir:
        statedir.prepare(options.state_dir)
    store = open_store(options.db_url or sqlite_url(options.state_dir), writer=True)
    if uses_dir:
        # After the store: what it says of a full or read-only disk is clearer than this.
        try:
            statedir.lock(options.state_dir)  # released by serve() on its way out
        except BaseException:
            store.close()
            raise
    return store


async def serve(
    options: Options,
    stop: asyncio.Event | None = None,
    http: HttpServer | None = None,
    on_started: Callable[[], None] | None = None,
    store: RunStore | None = None,
) -> int:
    """Run until ``stop`` is set (or SIGTERM/SIGINT/SIGHUP, or a component fails). Returns the exit
    status: 1 if a component failed. ``on_started`` is called once everything runs. ``store``:
    from :func:`open_state`, opened by the caller (so that it can report a failure to open
    it); by default opened here. It is closed on the way out."""
    loop = asyncio.get_running_loop()
    manager = Manager()
    # SIGHUP too: a closed terminal or an ssh session that ends would otherwise kill crontask
    # at once, leaving its commands running unsupervised and their runs recorded `running`.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(signum, manager.signalled)
    if stop is not None:
        loop.create_task(stop.wait()).add_done_callback(lambda _: manager.stopping.set())
    if store is None:
        store = open_state(options)
    open_threads()  # so that a resolver that hangs (http actions) cannot stall the passes
    try:
        parts = await build(options, store, manager)
        await start(parts, options, manager, http)
        if on_started is not None:
            on_started()
        await manager.wait()
    except ComponentFailed as failed:
        # Recorded by the manager; what started so far is stopped below.
        log.debug("start-up ended early", extra={"fields": {"error": str(failed)}})
    except StopBeforeReady as stopped:
        log.info("stopped during start-up", extra={"fields": {"starting": stopped.component}})
    finally:
        await manager.shutdown()
        store.close()
        statedir.unlock(options.state_dir)
        await close_threads()
        log.info("crontask stopped")
    return 1 if manager.failures else 0


async def build(options: Options, store: RunStore, manager: Manager) -> Parts:
    me = instance_id()
    # The state directory's last holder: what it left running is dead unless this host sees
    # it alive (a copied state directory), whatever host or pid it had (see instance.judged).
    previous = statedir.hold(options.state_dir, me)
    folders, git = _local_sources(options)  # first: connecting to a cluster starts a thread
    kube = await connect_to(options.kubernetes, me) if options.kubernetes else None
    support = await jobs(options.jobs, kube, options.resync_seconds)
    outlives = support.outlives if support else lambda r: False
    now = datetime.now(UTC)
    # Those whose beat in the store has lapsed are dead too unless this host sees them alive
    # (a pod recreated under another name: see heartbeat.py).
    lapsed = store.lapsed(now)
    crashed = recover(
        store,
        me,
        now,
        outlives,
        grace=options.kill_grace,
        gone=[previous, *lapsed] if previous else lapsed,
        alone=options.ha is None,
    )
    task_env = _task_env(options)
    dispatcher = _dispatcher(store, me, task_env, options.kill_grace, support)

    def on_fire(key: str, at: datetime) -> None:
        definition = scheduler.owned().get(key)
        if definition is not None:
            dispatcher.due(definition, at)

    scheduler = ApsScheduler(on_fire)
    # Metrics read the scheduler's snapshot and the sources at each scrape, and keep each
    # task's runs from the run listener; a task that comes to this process starts from its
    # last outcomes in the store.
    metrics = Metrics(
        scheduler,
        sources=lambda: service.sources(),
        history=store,
        per_task_histograms=options.metrics_per_task_histograms,
    )
    dispatcher.subscribe(metrics.on_run)
    sources = _sources(options, folders, git, kube)
    anchors = await in_thread(store.last_slots)
    reconciler = _reconciler(options, sources, support, scheduler, dispatcher, anchors)
    reconciler.subscribe(
        lambda result: metrics.reconciled(
            result.ok, result.seconds, result.desired if result.ok else None
        )
    )
    queue = WorkQueue()
    control = ReconcileLoop(reconciler, queue, resync_seconds=options.resync_seconds)
    cluster = None
    if options.ha is not None:
        dispatcher.handover = Handover(store, me, dispatcher.recorder.call)
        membership, views = _membership(options, options.ha, kube)
        cluster = Cluster(
            Announcement(me, address=options.ha.address),
            membership,
            views,
            store=store,
            reconciler=reconciler,
            dispatcher=dispatcher,
            queue=queue,
            stopping=manager.stopping,
            timing=options.ha.timing,
            revision=lambda: git.status().revision if git else None,
            on_handover=metrics.handed_over,
            on_renewal=metrics.replicas,
            outlives=outlives,
        )
    notifier = _notifier(options, metrics, reconciler, dispatcher, store, cluster)
    if notifier is not None:
        notifier.crashed(crashed)
    heartbeat = None
    if cluster is None:  # replicas judge each other by their membership
        heartbeat = Heartbeat(
            store,
            me,
            call=in_thread,  # not the recorder's: its threads end with the runs, before this
            outlives=outlives,
            on_interrupted=notifier.crashed if notifier is not None else lambda records: None,
        )
    service = Service(
        loop=asyncio.get_running_loop(),
        store=store,
        scheduler=scheduler,
        dispatcher=dispatcher,
        reconciler=reconciler,
        reconcile=control.reconcile_now,
        api=next(s for s in sources if isinstance(s, ApiSource)),
        sources=sources,
        sync_requested=lambda kind: (
            kind == SourceKind.GIT and git is not None and git.request_sync()
        ),
        cluster=cluster,
        jobs=support is not None,
    )
    return Parts(
        me, store, queue, dispatcher, scheduler, metrics, sources, git, reconciler, control,
        service, task_env, kube, support, cluster, notifier, heartbeat,
    )  # fmt: skip


def _reconciler(
    options: Options,
    sources: list[Source],
    support: JobSupport | None,
    scheduler: ApsScheduler,
    dispatcher: Dispatcher,
    anchors: Mapping[str, datetime],
) -> Reconciler:
    """The reconciler over ``sources``; without Kubernetes each source is seen through
    ``WithoutJobs``, which keeps what a task ran before it became a job task (in force now)."""

    def in_force(key: str) -> Definition | None:
        return reconciler.desired.tasks.get(key)

    reconciler = Reconciler(
        sources if support is not None else [WithoutJobs(s, in_force) for s in sources],
        scheduler,
        dispatcher,
        allow_empty=options.allow_empty,
        anchors=anchors,
    )
    return reconciler


def _recent_runs(store: RunStore, key: str, pages: int = 5) -> list[RunRecord]:
    """A task's newest records, newest first, for the notifier: read page by page (20 a page,
    at most ``pages``) until one is there that is not a slot skipped or a run still going, so
    that a long run's skipped slots do not hide how the task last ended."""
    found: list[RunRecord] = []
    cursor = None
    for _ in range(pages):
        page = store.query(RunQuery(task=key, limit=20, output=False, cursor=cursor))
        found += page.items
        cursor = page.next_cursor
        ended = (r for r in page.items if r.status not in (RunStatus.SKIPPED, RunStatus.RUNNING))
        if cursor is None or next(ended, None) is not None:
            break
    return found


def _dispatcher(
    store: RunStore,
    me: str,
    task_env: dict[str, str],
    kill_grace: float,
    support: JobSupport | None,
) -> Dispatcher:
    """The dispatcher with its actions: commands, HTTP calls, and Jobs when there is a
    cluster to create them in (its runner then resumes adopted runs and reports progress)."""
    runners: list[Action] = [CommandRunner(task_env, kill_grace=kill_grace), HttpRunner(os.environ)]
    if support is not None:
        runners.append(support.runner)
    dispatcher = Dispatcher(store, owner=me, actions=Actions(runners))
    if support is not None:
        dispatcher.resumable = support.runner
        support.runner.progress = dispatcher.progress
    return dispatcher


async def start(parts: Parts, options: Options, manager: Manager, http: HttpServer | None) -> None:
    """Start the components in order; each is ready before the next starts."""
    if reaper.adopts_orphans():  # first: stopped last, after the runs' shutdown orphaned theirs
        await manager.start(reaper.Reaper())
    if parts.notifier is not None:  # first: stopped last, after the runs' final records
        await manager.start(parts.notifier)
    if parts.heartbeat is not None:  # stopped after the runs: then its row goes
        await manager.start(parts.heartbeat)
    if parts.kube is not None:
        await parts.kube.start(manager, parts.reconciler, parts.scheduler, parts.dispatcher)
    if parts.jobs is not None:  # the Jobs listed before the first pass: Forbid sees them
        await manager.start(
            JobSupervisor(
                parts.jobs,
                store=parts.store,
                dispatcher=parts.dispatcher,
                reconciler=parts.reconciler,
            )
        )
    for source in parts.sources:
        await manager.start(SourceWatch(source, parts.queue.add))
    if parts.cluster is not None:
        await manager.start(parts.cluster)  # joined: the first pass knows which tasks are ours
    await manager.start(Runs(parts.dispatcher, options.shutdown_grace, manager.hurry))
    await manager.start(parts.control)
    parts.service.started = True
    _log_started(parts, options)
    await manager.start(
        Housekeeping(
            parts.store,
            parts.scheduler,
            parts.dispatcher,
            parts.metrics,
            interval=options.housekeeping_seconds,
            max_age=options.history_max_age,
        )
    )
    if http is not None:
        service, metrics = parts.service, parts.metrics
        await manager.start(Http(lambda stopped: http(service, metrics, stopped)))


def _notifier(
    options: Options,
    metrics: Metrics,
    reconciler: Reconciler,
    dispatcher: Dispatcher,
    store: RunStore,
    cluster: Cluster | None,
) -> Notifier | None:
    """--notifications: a run listener and pass observer, delivering in its own component."""
    if options.notifications is None:
        return None
    notifier = Notifier(
        options.notifications,
        metrics=metrics,
        mine=reconciler.mine,
        history=lambda key: _recent_runs(store, key),
        page_url=options.page_url,
        # With replicas the one that finds a crashed run may not own its task: see notify.py.
        crashes_told=cluster is None,
    )
    dispatcher.subscribe(notifier.on_run)

    def after_pass(result: PassResult) -> None:
        if result.ok:
            left = (step.key for step in result.plan.of(Operation.REMOVE))
            notifier.after_pass(result.desired, left)

    reconciler.subscribe(after_pass)
    if cluster is not None:
        cluster.on_resumed = notifier.forget
    return notifier


def _task_env(options: Options) -> dict[str, str]:
    if unset := [name for name in options.pass_env if name not in os.environ]:
        log.warning(
            "--pass-env names a variable crontask does not have; commands do not get it",
            extra={"fields": {"names": ",".join(unset)}},
        )
    return task_environment(os.environ, options.task_env, options.pass_env)


def _local_sources(options: Options) -> tuple[DirectorySource | None, GitSource | None]:
    """The folder and git sources, their files read ahead on every core (for git, the tree an
    earlier run left in force). This must run before anything starts a thread: reading ahead
    forks only from a process without one. The first pass takes what was read of each file
    that has not changed since."""
    size, cores = options.max_file_size, usable_cores()
    folders = None
    if options.paths:
        guard = not options.allow_empty
        folders = DirectorySource(options.paths, max_file_size=size, guard_empty=guard)
        read_ahead(folders, cores)
    git = None
    if options.git:
        git = GitSource(options.git, options.state_dir, max_file_size=size)
        git.read_ahead(cores)
    return folders, git


def _sources(
    options: Options,
    folders: DirectorySource | None,
    git: GitSource | None,
    kube: Kubernetes | None,
) -> list[Source]:
    """The API's own tasks first, then folders, git and the CronTask resources."""
    found = [folders, git, kube.source if kube is not None else None]
    return [_api_source(options), *(source for source in found if source is not None)]


def _api_source(options: Options) -> ApiSource:
    """Files in the state directory; with replicas, the shared store (so every replica sees
    the same tasks), polled for the writes of the others."""
    if options.ha is None:
        folder = options.state_dir / "api-tasks"
        return ApiSource(ApiTaskFiles(folder), location=f"API-owned tasks in {folder}")
    from reconciler.store.api_tasks import SqlApiTasks

    assert options.db_url is not None
    return ApiSource(
        SqlApiTasks.open(options.db_url),
        location="API-owned tasks in the shared run store",
        poll=options.ha.timing.renew_interval,
    )


def _membership(
    options: Options, ha: HaOptions, kube: Kubernetes | None
) -> tuple[Membership, Views]:
    """Leases with Kubernetes, else the members table; the views live in the shared store."""
    # Imported here: only --ha needs them (and only --ha requires PostgreSQL).
    from reconciler.store.members import SqlMembership, SqlViews

    assert options.db_url is not None
    rows = SqlMembership.open(options.db_url)
    views = SqlViews(rows.engine)
    if kube is None:
        return rows, views
    from reconciler.membership.leases import LeaseMembership, group_of

    namespace = ha.lease_namespace or kube.connection.home
    # The replicas sharing this run store are one group: another deployment's Leases in the
    # same namespace are not members (they would be handed tasks they never run).
    group = group_of(options.db_url)
    log.info(
        "membership on Kubernetes Leases",
        extra={"fields": {"namespace": namespace, "group": group}},
    )
    return LeaseMembership(kube.connection.api, namespace, group=group), views


def _log_started(parts: Parts, options: Options) -> None:
    log.info(
        "crontask started",
        extra={
            "fields": {
                "instance": parts.me,
                "paths": ",".join(str(p) for p in options.paths) or None,
                "git": parts.git.status().url if parts.git else None,
                "tasks": len(parts.scheduler.owned()),
                # Names only: which of crontask's variables every command gets.
                "task_env": options.task_env
                if options.task_env == "inherit"
                else ",".join(sorted(parts.task_env)),
            }
        },
    )
