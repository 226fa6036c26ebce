"""``crontask run``: the long-running reconciler on one asyncio event loop.

Start-up: open the run store, mark runs left ``running`` by a dead process as ``interrupted``,
read every source, apply the first plan, start the scheduler. Then a pass runs whenever a
watcher marks paths dirty, and a full resync every ``resync_seconds`` heals whatever an event
missed. SIGTERM/SIGINT stop new runs, let running ones finish for ``shutdown_grace`` seconds,
then stop them (recorded ``interrupted``, reason Shutdown).

With ``--kubernetes`` the CronTask objects are listed before the first pass (so it sees them),
their watch marks keys dirty like the file watcher marks paths, and after every pass and every
run record the :class:`~reconciler.sinks.kubernetes_report.StatusReporter` derives each object's
status (written by its own threads, coalesced and rate-limited), records Events and acts on
the run-now annotation.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable, Collection, Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import Reconciler, account_for_slots
from reconciler.controller.service import API_KIND, Service
from reconciler.controller.view import RuntimeView
from reconciler.core.runs import RunRecord, Trigger
from reconciler.core.status import KUBERNETES
from reconciler.runner.environment import TaskEnv, task_environment
from reconciler.scheduling.apscheduler import ApsScheduler
from reconciler.sinks.kubernetes import StatusWriter
from reconciler.sinks.kubernetes_events import EventRecorder
from reconciler.sinks.kubernetes_report import StatusReporter
from reconciler.sinks.metrics import Metrics
from reconciler.sources.base import Source
from reconciler.sources.files import DirectorySource
from reconciler.sources.git import GitOptions, GitSource
from reconciler.sources.kubernetes import KubernetesOptions, KubernetesSource, connect
from reconciler.sources.watch import watch_paths
from reconciler.store import open_store, sqlite_url
from reconciler.store.base import RunStore

log = logging.getLogger("crontask")

GIT_KIND = "git"


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
    metrics_per_task_histograms: bool = False


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


async def housekeeping(
    store: RunStore,
    scheduler: ApsScheduler,
    dispatcher: Dispatcher,
    options: Options,
    stop: asyncio.Event,
    metrics: Metrics,
) -> None:
    """Enforce retention every ``housekeeping_seconds``: per-task history limits (oldest
    first) and the global maximum age. Runs in the store's threads, in batches, so it never
    blocks the loop or a run's records for long."""
    max_age = timedelta(seconds=options.history_max_age) if options.history_max_age else None
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=options.housekeeping_seconds)
        if stop.is_set():
            return
        limits = {
            key: (d.task.spec.successful_runs_history_limit, d.task.spec.failed_runs_history_limit)
            for key, d in scheduler.owned().items()
        }
        started = time.monotonic()
        try:
            deleted = await dispatcher.recorder.call(
                store.prune, limits, max_age, datetime.now(UTC)
            )
        except Exception:
            log.exception("history pruning failed; will try again")
            continue
        seconds = time.monotonic() - started
        metrics.pruned(deleted, seconds, time.time())
        log.info(
            "history pruned", extra={"fields": {"deleted": deleted, "seconds": round(seconds, 3)}}
        )


async def serve(
    options: Options, stop: asyncio.Event | None = None, http: HttpServer | None = None
) -> int:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    store = open_store(options.db_url or sqlite_url(options.state_dir))
    me = instance_id()
    recover(store, me, datetime.now(UTC))
    task_env = task_environment(os.environ, options.task_env, options.pass_env)
    if unset := [name for name in options.pass_env if name not in os.environ]:
        log.warning(
            "--pass-env names a variable crontask does not have; commands do not get it",
            extra={"fields": {"names": ",".join(unset)}},
        )
    dispatcher = Dispatcher(store, owner=me, kill_grace=options.kill_grace, task_env=task_env)

    def on_fire(key: str, at: datetime) -> None:
        definition = scheduler.owned().get(key)
        if definition is not None:
            dispatcher.fire(definition, at)

    scheduler = ApsScheduler(on_fire)
    api_dir = options.state_dir / "api-tasks"
    api_dir.mkdir(parents=True, exist_ok=True)
    sources: list[Source] = [DirectorySource([api_dir], source=API_KIND)]
    if options.paths:
        sources.append(DirectorySource(options.paths))
    git = GitSource(options.git, options.state_dir) if options.git else None
    if git is not None:
        sources.append(git)

    # Watchers mark what changed (paths, object keys) and wake the main loop for a pass.
    dirty: dict[str, set[str]] = {}
    wake = asyncio.Event()

    def mark(kind: str, paths: Collection[str] = ()) -> None:
        dirty.setdefault(kind, set()).update(paths)
        wake.set()

    kube: _Kubernetes | None = None
    if options.kubernetes is not None:
        kube = await _start_kubernetes(options.kubernetes, loop, mark, me)
        sources.append(kube.source)
    reconciler = Reconciler(sources, scheduler, allow_empty=options.allow_empty)
    one_pass_at_a_time = asyncio.Lock()
    if kube is not None:
        reporter = kube.reporter(scheduler, dispatcher)
        dispatcher.subscribe(reporter.on_run)

    async def reconcile(
        hints: Mapping[str, Collection[str]] | None, anchors: Mapping[str, datetime] | None = None
    ) -> None:
        async with one_pass_at_a_time:
            started = time.monotonic()
            try:
                keys = await asyncio.to_thread(reconciler.refresh, hints)
                result = reconciler.apply(keys, started)
            except Exception:
                metrics.reconciled(False, time.monotonic() - started)
                log.exception("reconcile failed; the next pass will try again")
                if anchors is not None:
                    scheduler.start()  # later passes add to a running scheduler
                return
            if anchors is not None:
                scheduler.start()  # the first pass: jobs get their first fire times now
            account_for_slots(result.plan, scheduler, dispatcher, datetime.now(UTC), anchors)
            if kube is not None:
                kube.after_pass(result.desired, scheduler.owned(), keys)
            metrics.reconciled(True, result.seconds, result.desired)
        level = logging.INFO if not result.plan.empty or hints is None else logging.DEBUG
        log.log(
            level,
            "reconciled",
            extra={
                "fields": {
                    "tasks": len(result.desired.tasks),
                    "plan": result.plan.summary(),
                    "errors": len(result.desired.problems),
                    "seconds": round(result.seconds, 4),
                    "resync": hints is None,
                }
            },
        )

    git_wanted = asyncio.Event()  # a webhook asked for a fetch now

    def sync_requested(kind: str) -> bool:
        if kind != GIT_KIND or git is None:
            return False
        loop.call_soon_threadsafe(git_wanted.set)
        return True

    service = Service(
        loop=loop,
        store=store,
        scheduler=scheduler,
        dispatcher=dispatcher,
        reconciler=reconciler,
        reconcile=reconcile,
        api_dir=api_dir,
        sources=sources,
        sync_requested=sync_requested,
    )
    # Metrics read the scheduler's snapshot and the sources at each scrape, and keep each
    # task's runs from the run listener.
    metrics = Metrics(
        scheduler, sources=service.sources, per_task_histograms=options.metrics_per_task_histograms
    )
    dispatcher.subscribe(metrics.on_run)
    background: list[asyncio.Task[None]] = []
    if options.paths:
        # Watch before the first pass reads: a file written while crontask starts is then
        # either read by that pass or reported by the watch, never left for the resync.
        armed = asyncio.Event()
        background.append(
            loop.create_task(
                watch_paths(options.paths, lambda p: mark("file", p), stop, armed=armed)
            )
        )
        await armed.wait()
    if git is not None:
        # The revision in force before this restart applies at once; the first fetch follows.
        await asyncio.to_thread(git.sync)
    await reconcile(None, await asyncio.to_thread(store.last_slots))
    service.started = True
    # What the first pass built (definitions, schedules, jobs) lives as long as the process;
    # moving it out of the collector's generations keeps later collections from walking it,
    # which at 10 000 tasks showed as pauses in the middle of a pass.
    gc.freeze()
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

    background.append(
        loop.create_task(housekeeping(store, scheduler, dispatcher, options, stop, metrics))
    )
    if git is not None:
        background.append(
            loop.create_task(
                _sync_git(git, lambda: mark(GIT_KIND), metrics.source_sync_failed, git_wanted, stop)
            )
        )
    failure: list[str] = []
    if http is not None:
        server = loop.create_task(http(service, metrics, stop))

        def server_ended(task: asyncio.Task[None]) -> None:
            # The API is part of the contract (health probes, metrics): without it, stop.
            if not stop.is_set():
                error = task.exception() if not task.cancelled() else None
                failure.append(str(error) if error else "the HTTP server stopped")
                log.error("http server failed; stopping", extra={"fields": {"error": failure[-1]}})
                stop.set()

        server.add_done_callback(server_ended)
        background.append(server)
    next_resync = time.monotonic() + options.resync_seconds
    try:
        while not stop.is_set():
            timeout = max(0.0, next_resync - time.monotonic())
            stopping = loop.create_task(stop.wait())
            woken = loop.create_task(wake.wait())
            await asyncio.wait({stopping, woken}, timeout=timeout, return_when="FIRST_COMPLETED")
            stopping.cancel()
            woken.cancel()
            if stop.is_set():
                break
            if wake.is_set():
                wake.clear()
                hints, dirty = dict(dirty), {}
                await reconcile(hints)
            else:
                await reconcile(None)
                next_resync = time.monotonic() + options.resync_seconds
    finally:
        log.info("crontask stopping", extra={"fields": {"running": dispatcher.active_count()}})
        scheduler.shutdown()
        stop.set()
        if kube is not None:
            await asyncio.to_thread(kube.source.stop)
        for task in background:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
        await dispatcher.shutdown(options.shutdown_grace)
        if kube is not None:
            await asyncio.to_thread(kube.close)  # the final statuses (interrupted runs)
        store.close()
        log.info("crontask stopped")
    return 1 if failure else 0


async def _sync_git(
    git: GitSource,
    changed: Callable[[], None],
    failed: Callable[[str], None],
    wanted: asyncio.Event,
    stop: asyncio.Event,
) -> None:
    """Fetch on the interval (or the backoff after failures), or at once when a webhook asks;
    a new revision asks for a pass."""
    while not stop.is_set():
        stopping = asyncio.ensure_future(stop.wait())
        asked = asyncio.ensure_future(wanted.wait())
        await asyncio.wait(
            {stopping, asked}, timeout=git.status().next_retry_in, return_when="FIRST_COMPLETED"
        )
        stopping.cancel()
        asked.cancel()
        wanted.clear()
        if stop.is_set():
            return
        if await asyncio.to_thread(git.sync):
            changed()
        if git.status().last_error:
            failed(GIT_KIND)


@dataclasses.dataclass
class _Kubernetes:
    """The Kubernetes source and its status/Event writers, wired to the runtime."""

    source: KubernetesSource
    writer: StatusWriter
    events: EventRecorder
    report: StatusReporter | None = None

    def reporter(self, scheduler: ApsScheduler, dispatcher: Dispatcher) -> StatusReporter:
        def next_run(key: str, now: datetime) -> datetime | None:
            # The scheduler's own next fire time (None while suspended): what will happen,
            # not a second computation of it.
            return scheduler.next_fire_time(key)

        def fire_manual(key: str) -> RunRecord | None:
            definition = scheduler.owned().get(key)
            if definition is None or definition.location.source != KUBERNETES:
                return None
            return dispatcher.fire(definition, datetime.now(UTC), Trigger.MANUAL)

        self.report = StatusReporter(
            self.writer,
            self.events,
            active=lambda key: tuple(r.id for r in dispatcher.active(key)),
            next_run=next_run,
            fire_manual=fire_manual,
        )
        return self.report

    def after_pass(
        self, desired: Any, owned: Mapping[str, Any], keys: Collection[str] | None
    ) -> None:
        if self.report is None:
            return
        try:
            self.report.after_pass(self.source.objects(), desired, owned, keys)
        except Exception:
            log.exception("kubernetes status update failed; the next pass will try again")

    def close(self) -> None:
        self.writer.stop(timeout=5.0)
        self.events.stop(timeout=2.0)


async def _start_kubernetes(
    options: KubernetesOptions,
    loop: asyncio.AbstractEventLoop,
    mark: Callable[[str, Collection[str]], None],
    me: str,
) -> _Kubernetes:
    """Connect, list (waiting up to 30 s for the first list, so the first pass sees the
    objects), and start watching; status and Event writers get their own threads."""
    api, namespace = await asyncio.to_thread(connect, options)

    def changed(keys: set[str]) -> None:
        # Called on the watch thread: only hand the keys over to the loop.
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(mark, KUBERNETES, keys)

    source = KubernetesSource(
        api, namespace, on_change=changed, resync_seconds=options.resync_seconds
    )
    await asyncio.to_thread(source.start, 30.0)
    writer = StatusWriter(api)
    writer.start()
    events = EventRecorder(api, instance=me)
    events.start()
    log.info(
        "kubernetes source started",
        extra={"fields": {"watching": source.location, "synced": source.informer.synced}},
    )
    return _Kubernetes(source, writer, events)
