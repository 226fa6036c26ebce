"""``crontask run``: the composition root. It builds the parts and hands them to the manager.

Start-up: open the run store, mark runs left ``running`` by a dead process as ``interrupted``,
build the sources, the scheduler and the dispatcher, then start the components in order (see
``controller.manager``): the Kubernetes writers and informer (listed before the first pass),
the file watch (armed before it), git (the revision in force applied), the runs, the reconcile
loop (its first, full pass starts the scheduler), housekeeping, and the HTTP server.
SIGTERM/SIGINT, or a component that fails, stop them in the reverse order: no new slots, running
runs get ``shutdown_grace`` to finish, then are stopped (recorded ``interrupted``, reason
Shutdown), and the last statuses are written.

Who reacts to what is wired here and only here: watchers mark work on the queue, the reconcile
loop runs passes, pass observers (metrics, Kubernetes status) and run listeners (metrics, status,
the API's last runs) subscribe.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import signal
import socket
from collections.abc import Callable, Collection, Coroutine, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.controller.cluster import Cluster, Timing
from reconciler.controller.components import (
    ApiPoll,
    FileWatch,
    GitSync,
    Housekeeping,
    Http,
    Informer,
    Runs,
    Threaded,
)
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.handover import Handover
from reconciler.controller.loop import ReconcileLoop
from reconciler.controller.manager import ComponentFailed, Manager
from reconciler.controller.queue import WorkQueue
from reconciler.controller.reconcile import PassResult, Reconciler
from reconciler.controller.service import Service
from reconciler.controller.view import RuntimeView
from reconciler.core.runs import RunRecord, Trigger
from reconciler.core.status import KUBERNETES
from reconciler.membership.base import Announcement, Membership, Views
from reconciler.runner.base import Actions
from reconciler.runner.command import CommandRunner
from reconciler.runner.environment import TaskEnv, task_environment
from reconciler.runner.http import HttpRunner
from reconciler.scheduling.apscheduler import ApsScheduler
from reconciler.sinks.kubernetes import StatusWriter
from reconciler.sinks.kubernetes_events import EventRecorder
from reconciler.sinks.kubernetes_report import StatusReporter
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from reconciler.sinks.notify_config import Notifications
from reconciler.sources.api import API_KIND, ApiSource, ApiTaskFiles, ApiTaskStore
from reconciler.sources.base import Source
from reconciler.sources.files import DirectorySource
from reconciler.sources.git import GitOptions, GitSource
from reconciler.sources.kubernetes import (
    Connection,
    KubernetesOptions,
    KubernetesSource,
    connect,
)
from reconciler.sources.limits import DEFAULT_MAX_FILE_SIZE
from reconciler.store import open_store, sqlite_url
from reconciler.store.base import RunQuery, RunStore

log = logging.getLogger("crontask")

GIT_KIND = "git"


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
    notifications: Notifications | None = None  # --notifications: receivers and routes
    page_url: str | None = None  # the status page's URL, for links in notifications


# Serves the HTTP interface (API, health, metrics) until the event is set. The CLI provides it,
# so that the controller layer never imports the web framework.
HttpServer = Callable[[RuntimeView, Metrics, asyncio.Event], Coroutine[Any, Any, None]]


def instance_id() -> str:
    """``host:pid:token``; the token tells this process from an earlier one with the same pid
    (a restarted container is pid 1 every time)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def dead_owners(owners: Collection[str], me: str) -> set[str]:
    """The owners of ``running`` records that are certainly gone: on this host, and either
    their pid is not alive or it is ours (an earlier incarnation of this process). Records of
    other hosts are left alone: only their own instance can know."""
    host, pid, _ = me.split(":")
    dead: set[str] = set()
    for owner in owners:
        parts = owner.split(":")
        if len(parts) != 3 or parts[0] != host or owner == me:
            continue
        if parts[1] == pid or not _alive(int(parts[1])):
            dead.add(owner)
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(store: RunStore, me: str, now: datetime) -> int:
    owners = {r.owner for r in store.running() if r.owner}
    interrupted = store.mark_interrupted(dead_owners(owners, me), now)
    for record in interrupted:
        log.warning(
            "run interrupted: the process died during it",
            extra={"fields": {"task": record.task, "run": record.id}},
        )
    return len(interrupted)


async def serve(
    options: Options,
    stop: asyncio.Event | None = None,
    http: HttpServer | None = None,
    on_started: Callable[[], None] | None = None,
) -> int:
    """Run until ``stop`` is set (or SIGTERM/SIGINT, or a component fails). Returns the exit
    status: 1 if a component failed. ``on_started`` is called once everything runs."""
    loop = asyncio.get_running_loop()
    manager = Manager()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, manager.stopping.set)
    if stop is not None:
        loop.create_task(stop.wait()).add_done_callback(lambda _: manager.stopping.set())

    store = open_store(options.db_url or sqlite_url(options.state_dir))
    me = instance_id()
    recover(store, me, datetime.now(UTC))
    task_env = task_environment(os.environ, options.task_env, options.pass_env)
    if unset := [name for name in options.pass_env if name not in os.environ]:
        log.warning(
            "--pass-env names a variable crontask does not have; commands do not get it",
            extra={"fields": {"names": ",".join(unset)}},
        )
    actions = Actions(
        [CommandRunner(task_env, kill_grace=options.kill_grace), HttpRunner(os.environ)]
    )
    dispatcher = Dispatcher(store, owner=me, actions=actions)

    def on_fire(key: str, at: datetime) -> None:
        definition = scheduler.owned().get(key)
        if definition is not None:
            dispatcher.fire(definition, at)

    scheduler = ApsScheduler(on_fire)
    # Metrics read the scheduler's snapshot and the sources at each scrape, and keep each
    # task's runs from the run listener.
    metrics = Metrics(
        scheduler,
        sources=lambda: service.sources(),
        per_task_histograms=options.metrics_per_task_histograms,
    )
    dispatcher.subscribe(metrics.on_run)
    queue = WorkQueue()
    api = ApiSource(_api_tasks(options))
    size = options.max_file_size
    sources: list[Source] = [api]
    if options.paths:
        guard = not options.allow_empty
        sources.append(DirectorySource(options.paths, max_file_size=size, guard_empty=guard))
    git = GitSource(options.git, options.state_dir, max_file_size=size) if options.git else None
    if git is not None:
        sources.append(git)
    kube = await _connect(options.kubernetes, queue, me) if options.kubernetes else None
    if kube is not None:
        sources.append(kube.source)
    cluster: Cluster | None = None

    reconciler = Reconciler(
        sources,
        scheduler,
        dispatcher,
        allow_empty=options.allow_empty,
        anchors=await asyncio.to_thread(store.last_slots),
    )
    reconciler.subscribe(
        lambda result: metrics.reconciled(
            result.ok, result.seconds, result.desired if result.ok else None
        )
    )
    if options.ha is not None:
        dispatcher.handover = Handover(store, me, dispatcher.recorder.call)
        membership, views = _membership(options, kube)
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
            revision=lambda: git.status().applied_revision if git else None,
            on_handover=metrics.handed_over,
            on_renewal=metrics.replicas,
        )
    notifier = _notifier(options, metrics, reconciler, dispatcher, store)
    control = ReconcileLoop(reconciler, queue, resync_seconds=options.resync_seconds)
    git_sync = GitSync(git, lambda _: queue.add(GIT_KIND), metrics) if git else None

    def sync_requested(kind: str) -> bool:
        if kind != GIT_KIND or git_sync is None:
            return False
        loop.call_soon_threadsafe(git_sync.wanted.set)
        return True

    service = Service(
        loop=loop,
        store=store,
        scheduler=scheduler,
        dispatcher=dispatcher,
        reconciler=reconciler,
        reconcile=control.reconcile_now,
        api=api,
        sources=sources,
        sync_requested=sync_requested,
        cluster=cluster,
    )
    try:
        if notifier is not None:  # first: stopped last, after the runs' final records
            await manager.start(notifier)
        if kube is not None:
            await kube.start(manager, reconciler, scheduler, dispatcher)
        if options.paths:
            await manager.start(FileWatch(options.paths, lambda p: queue.add("file", p)))
        if git_sync is not None:
            await manager.start(git_sync)
        if cluster is not None:
            await manager.start(cluster)  # joined: the first pass knows which tasks are ours
            await manager.start(ApiPoll(api, lambda keys: queue.add(API_KIND, keys)))
        await manager.start(Runs(dispatcher, options.shutdown_grace))
        await manager.start(control)
        service.started = True
        _log_started(me, options, git, scheduler, task_env)
        await manager.start(
            Housekeeping(
                store,
                scheduler,
                dispatcher,
                metrics,
                interval=options.housekeeping_seconds,
                max_age=options.history_max_age,
            )
        )
        if http is not None:
            await manager.start(Http(lambda stopped: http(service, metrics, stopped)))
        if on_started is not None:
            on_started()
        await manager.wait()
    except ComponentFailed as failed:
        # Recorded by the manager; what started so far is stopped below.
        log.debug("start-up ended early", extra={"fields": {"error": str(failed)}})
    finally:
        await manager.shutdown()
        store.close()
        log.info("crontask stopped")
    return 1 if manager.failures else 0


def _notifier(
    options: Options,
    metrics: Metrics,
    reconciler: Reconciler,
    dispatcher: Dispatcher,
    store: RunStore,
) -> Notifier | None:
    """--notifications: a run listener and pass observer, delivering in its own component."""
    if options.notifications is None:
        return None
    notifier = Notifier(
        options.notifications,
        metrics=metrics,
        mine=reconciler.mine,
        history=lambda key: store.query(RunQuery(task=key, limit=20)).items,
        page_url=options.page_url,
    )
    dispatcher.subscribe(notifier.on_run)
    reconciler.subscribe(lambda result: notifier.after_pass(result.desired) if result.ok else None)
    return notifier


def _api_tasks(options: Options) -> ApiTaskStore:
    """Files in the state directory; with replicas, the shared store, so all see the same."""
    if options.ha is None:
        return ApiTaskFiles(options.state_dir / "api-tasks")
    from reconciler.store.api_tasks import SqlApiTasks

    assert options.db_url is not None
    return SqlApiTasks.open(options.db_url)


def _membership(options: Options, kube: _Kubernetes | None) -> tuple[Membership, Views]:
    """Leases with Kubernetes, else the members table; the views live in the shared store."""
    # Imported here: only --ha needs them (and only --ha requires PostgreSQL).
    from reconciler.store.members import SqlMembership, SqlViews

    assert options.ha is not None
    assert options.db_url is not None
    rows = SqlMembership.open(options.db_url)
    views = SqlViews(rows.engine)
    if kube is None:
        return rows, views
    from reconciler.membership.leases import LeaseMembership

    namespace = options.ha.lease_namespace or kube.connection.home
    return LeaseMembership(kube.connection.api, namespace), views


def _log_started(
    me: str,
    options: Options,
    git: GitSource | None,
    scheduler: ApsScheduler,
    task_env: Mapping[str, str],
) -> None:
    log.info(
        "crontask started",
        extra={
            "fields": {
                "instance": me,
                "paths": ",".join(str(p) for p in options.paths) or None,
                "git": git.status().url if git else None,
                "tasks": len(scheduler.owned()),
                # Names only: which of crontask's variables every command gets.
                "task_env": options.task_env
                if options.task_env == "inherit"
                else ",".join(sorted(task_env)),
            }
        },
    )


@dataclasses.dataclass
class _Kubernetes:
    """The Kubernetes source, its status and Event writers, and what reports to them."""

    connection: Connection
    source: KubernetesSource
    writer: StatusWriter
    events: EventRecorder

    async def start(
        self,
        manager: Manager,
        reconciler: Reconciler,
        scheduler: ApsScheduler,
        dispatcher: Dispatcher,
    ) -> None:
        """Start the writers first (they flush last), then list and watch."""

        def fire_manual(key: str) -> RunRecord | None:
            definition = scheduler.owned().get(key)
            if definition is None or definition.location.source != KUBERNETES:
                return None
            return dispatcher.fire(definition, datetime.now(UTC), Trigger.MANUAL)

        report = StatusReporter(
            self.writer,
            self.events,
            mine=reconciler.mine,
            active=lambda key: tuple(r.id for r in dispatcher.active(key)),
            # The scheduler's own next fire time (None while suspended): what will happen,
            # not a second computation of it.
            next_run=lambda key, now: scheduler.next_fire_time(key),
            fire_manual=fire_manual,
        )
        dispatcher.subscribe(report.on_run)

        def after_pass(result: PassResult) -> None:
            if result.ok:
                report.after_pass(
                    self.source.objects(), result.desired, scheduler.owned(), result.keys
                )

        reconciler.subscribe(after_pass)
        await manager.start(
            Threaded("status-writer", self.writer.start, lambda: self.writer.stop(timeout=5.0))
        )
        await manager.start(
            Threaded("events", self.events.start, lambda: self.events.stop(timeout=2.0))
        )
        await manager.start(Informer(self.source.start, self.source.stop))
        log.info(
            "kubernetes source started",
            extra={
                "fields": {"watching": self.source.location, "synced": self.source.informer.synced}
            },
        )


async def _connect(options: KubernetesOptions, queue: WorkQueue, me: str) -> _Kubernetes:
    connection = await asyncio.to_thread(connect, options)
    api = connection.api
    loop = asyncio.get_running_loop()

    def changed(keys: set[str]) -> None:
        # Called on the watch thread: only hand the keys over to the loop.
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(queue.add, KUBERNETES, keys)

    source = KubernetesSource(
        api, connection.watch, on_change=changed, resync_seconds=options.resync_seconds
    )
    return _Kubernetes(connection, source, StatusWriter(api), EventRecorder(api, instance=me))
