"""``crontask run``: the composition root. It builds the parts and hands them to the manager.

Start-up: open the run store, mark runs left ``running`` by a dead process as ``interrupted``,
build the sources, the scheduler and the dispatcher, then start the components in order (see
``controller.manager``): the notifier, the heartbeat (without replicas), the Kubernetes
writers, the Job watch, every source's own watch (the CronTasks listed, the folder watch
armed, the git revision in force known: before the first pass reads), the replica membership
(joined: the first pass knows what is ours) or, on Kubernetes without replicas, the check for
another crontask (``membership.single``: it warns, never stops anything), the runs, the
reconcile loop (its first, full pass starts the scheduler), housekeeping, and the HTTP server.
SIGTERM/SIGINT, or a component that fails, stop them in the reverse order: no new slots, running
runs get ``shutdown_grace`` to finish, then are stopped (recorded ``interrupted``, reason
Shutdown), and the last statuses are written.

Each part is made from the options (``controller.options``) by a function of its own in
``controller.wiring``; this module decides the order in which they are made and started, and
links them. Who reacts to what is wired here, or where the part is made (``controller.wiring``,
``controller.kube``): sources mark work on the queue, the reconcile loop runs passes, pass
observers (metrics, Kubernetes status) and run listeners (metrics, status, the API's last runs)
subscribe.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from reconciler import __version__, statedir
from reconciler.aio import close_threads, in_thread, open_threads
from reconciler.controller import state_open, wiring
from reconciler.controller.cluster import Cluster
from reconciler.controller.components import Housekeeping, Http, Runs, SourceWatch
from reconciler.controller.crashed import CrashedAtStart
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.handover import Handover
from reconciler.controller.heartbeat import Heartbeat
from reconciler.controller.instance import Recovery, instance_id, recovery
from reconciler.controller.loop import ReconcileLoop
from reconciler.controller.manager import ComponentFailed, Manager, StopBeforeReady
from reconciler.controller.options import Options
from reconciler.controller.queue import WorkQueue
from reconciler.controller.reconcile import Reconciler
from reconciler.controller.service import Service
from reconciler.controller.state_open import uses_state_dir
from reconciler.controller.view import RuntimeView
from reconciler.core.desired import SourceKind
from reconciler.core.runs import RunRecord
from reconciler.core.urls import redact_db_url, redact_url
from reconciler.membership.base import Announcement
from reconciler.runner import reaper
from reconciler.scheduling.apscheduler import ApsScheduler
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from reconciler.sources.api import ApiSource
from reconciler.sources.base import Source
from reconciler.sources.git import GitSource
from reconciler.store import DB_FILENAME
from reconciler.store.base import RunStore, StoreUnavailable

if TYPE_CHECKING:  # they import the Kubernetes client: loaded only where it is used
    from reconciler.controller.jobs import JobSupport
    from reconciler.controller.kube import Kubernetes
    from reconciler.membership.single import SingleCheck

log = logging.getLogger("crontask")
# Seconds the stop waits for crontask's own threads' work in flight (``aio.close_threads``).
THREADS_WAIT = 2.0


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
    heartbeat: Heartbeat | None = None  # None only where a test builds the parts by hand
    single: SingleCheck | None = None  # on Kubernetes without --ha (membership.single)
    previous: str | None = None  # the state directory's last holder (``statedir.hold``)


def open_state(options: Options) -> RunStore:
    """The state directory and the run store of ``options``, opened as
    ``controller.state_open`` says (where ``cli.daemon`` opens them before this module's
    imports)."""
    uses_dir = uses_state_dir(ha=options.ha is not None, git=options.git is not None)
    return state_open.open_state(options.state_dir, options.db_url, uses_dir=uses_dir)


async def serve(
    options: Options,
    stop: asyncio.Event | None = None,
    http: HttpServer | None = None,
    on_started: Callable[[], None] | None = None,
    store: RunStore | None = None,
) -> int:
    """Run until ``stop`` is set (or SIGTERM/SIGINT/SIGHUP, or a component fails). Returns the exit
    status: 1 if a component failed or run records were lost at shutdown (the store stayed
    unavailable: ``Recorder.close``). ``on_started`` is called once everything runs. ``store``:
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
    parts: Parts | None = None
    try:
        parts = await build(options, store, manager)
        await in_thread(wiring.say_unread_api_tasks, options)
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
        # Bounded: a thread waiting for a store that never answers (the heartbeat's) would
        # hold the stop for ever; what is left is abandoned (``cli.daemon`` ends without it).
        await asyncio.wait({asyncio.ensure_future(close_threads())}, timeout=THREADS_WAIT)
        log.info("crontask stopped")
    lost = parts is not None and parts.dispatcher.recorder.lost > 0
    return 1 if manager.failures or lost else 0


def _recover(
    options: Options,
    store: RunStore,
    me: str,
    previous: str | None,
    outlives: Callable[[RunRecord], bool],
) -> Recovery:
    """The runs a dead crontask left ``running``, marked ``interrupted`` (``instance.recovery``).
    ``previous``: the state directory's last holder, dead unless this host sees it alive (a
    copied state directory), whatever host or pid it had (see ``instance.judged``). Its
    ``told``: the runs for this crontask's notifier to tell of, if it has one and no replicas
    (which tell of no crashed run), those of the tasks its first pass declares
    (``controller.crashed``); the others are left to the crontask that declares them.
    A store that cannot take the ends keeps them for later (``Recorder.later``); one that
    cannot be read at all stops the start, in one line: nothing can be decided without it."""
    gone = [previous] if previous else []
    tells_of = gone if options.ha is None and options.notifications is not None else []
    try:
        return recovery(
            store,
            me,
            datetime.now(UTC),
            outlives,
            grace=options.kill_grace,
            gone=gone,
            alone=options.ha is None,
            tells_of=tells_of,
        )
    except StoreUnavailable as err:
        raise SystemExit(
            "crontask: cannot read the run store to recover the runs of a crontask that died "
            f"during them: {err}"
        ) from None


def _taken(anchors: dict[str, datetime], ended: list[RunRecord]) -> dict[str, datetime]:
    """``anchors`` (each task's newest slot in the store) with the slots of ``ended`` that
    wait to be recorded (the store unavailable at start): catch-up must not run them again."""
    for record in ended:
        if not record.scheduled_at.microsecond:  # a manual run's time is no slot
            at = anchors.get(record.task, record.scheduled_at)
            anchors[record.task] = max(at, record.scheduled_at)
    return anchors


def _service(
    store: RunStore,
    scheduler: ApsScheduler,
    dispatcher: Dispatcher,
    reconciler: Reconciler,
    control: ReconcileLoop,
    sources: list[Source],
    git: GitSource | None,
    cluster: Cluster | None,
    support: JobSupport | None,
) -> Service:
    """What the API and the status page read and ask of the running parts."""
    return Service(
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
        job_watches=(
            (lambda: support.watch_states(reconciler.desired)) if support is not None else list
        ),
    )


async def build(options: Options, store: RunStore, manager: Manager) -> Parts:
    me = instance_id()
    previous = statedir.hold(options.state_dir, me)
    folders, git = wiring.local_sources(options)  # first: connecting to a cluster starts a thread
    kube, support = await _kubernetes(options, me)
    outlives = support.outlives if support else lambda r: False
    crashed = _recover(options, store, me, previous, outlives)
    task_env = wiring.task_env(options)
    dispatcher = wiring.dispatcher(store, me, task_env, options.kill_grace, support)
    dispatcher.recorder.later(crashed.unsaved, crashed.unclaimed)

    def on_fire(key: str, at: datetime) -> None:
        definition = scheduler.owned().get(key)
        if definition is not None:
            dispatcher.due(definition, at)

    scheduler = ApsScheduler(on_fire)
    # Metrics read the scheduler's snapshot and the sources at each scrape, and keep each
    # task's runs from the run listener, and the runs adopted here (no start heard) from the
    # progress listener; a task that comes to this process starts from its last outcomes and
    # its runs in progress elsewhere in the store. The run store's state: the readiness check's
    # last answer (never waited for: ``StorePing.seen``) and the recorder's records waiting.
    metrics = Metrics(
        scheduler,
        sources=lambda: service.sources(),
        history=store,
        owner=me,
        per_task_histograms=options.metrics_per_task_histograms,
        run_store=lambda: service.run_store(),
    )
    # The runs marked at recovery that carry no note "untold" (told by this crontask) or are not
    # in the store yet: the metrics' reads of the store would not count them.
    metrics.crashed([*crashed.told, *crashed.unsaved, *crashed.unclaimed])
    dispatcher.subscribe(metrics.on_run)
    dispatcher.subscribe_progress(metrics.on_progress)
    sources = wiring.sources(options, folders, git, kube)
    anchors = _taken(await in_thread(store.last_slots), crashed.unclaimed)
    reconciler = wiring.reconciler(options, sources, support, scheduler, dispatcher, anchors)
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
        membership, views = wiring.membership(options, options.ha, kube)
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
    notifier = wiring.notifier(options, metrics, reconciler, dispatcher, store, cluster)
    if notifier is not None:
        unclaimed = [(r.id, r.attempt) for r in crashed.unclaimed]
        told = CrashedAtStart(crashed.told, notifier.crashed, dispatcher.recorder, unclaimed)
        reconciler.subscribe(told)
    heartbeat = wiring.heartbeat(
        store, me, reconciler, notifier, outlives, replicas=cluster is not None
    )
    service = _service(
        store, scheduler, dispatcher, reconciler, control, sources, git, cluster, support
    )
    single = _single(options, kube, me, metrics) if cluster is None else None
    return Parts(
        me, store, queue, dispatcher, scheduler, metrics, sources, git, reconciler, control,
        service, task_env, kube, support, cluster, notifier, heartbeat, single, previous,
    )  # fmt: skip


async def _kubernetes(options: Options, me: str) -> tuple[Kubernetes | None, JobSupport | None]:
    """The CronTask source's connection and the job action, each if asked for. The Kubernetes
    client is imported only then: it is a quarter of the start's imports (``kubernetes``, its
    dynamic client's schema validation), and a crontask without it never needs it (a job task
    is a definition error there, ``job_options.WithoutJobs``, which imports none of it)."""
    if options.kubernetes is None and options.jobs.kubeconfig is None:
        return None, None
    from reconciler.controller.kube import connect_to, jobs

    kube = await connect_to(options.kubernetes, me) if options.kubernetes else None
    return kube, await jobs(options.jobs, kube, options.resync_seconds)


def _single(
    options: Options, kube: Kubernetes | None, me: str, metrics: Metrics
) -> SingleCheck | None:
    """Without --ha, with the Kubernetes source: the Lease crontask-single, which tells of
    another crontask without --ha running the same CronTasks (its gauge from 0). It lives in
    --lease-namespace, else in the namespace of the CronTasks watched: whoever runs them, in
    a pod of any namespace or on a laptop whose kubeconfig names another, looks there, and two
    crontasks watching two namespaces do not take each other for a second one. With
    --all-namespaces, in the pod's namespace (as --ha's Leases)."""
    if kube is None:
        return None
    from reconciler.membership.single import SingleCheck, SingleLease

    namespace = options.lease_namespace or kube.connection.watch or kube.connection.home
    metrics.single_lease(False)
    return SingleCheck(SingleLease(kube.connection.api, namespace, me), metrics.single_lease)


async def start(parts: Parts, options: Options, manager: Manager, http: HttpServer | None) -> None:
    """Start the components in order; each is ready before the next starts."""
    if reaper.adopts_orphans():  # first: stopped last, after the runs' shutdown orphaned theirs
        await manager.start(reaper.Reaper())
    if parts.notifier is not None:  # first: stopped last, after the runs' final records
        await manager.start(parts.notifier)
    if parts.heartbeat is not None:  # stopped after the runs: then its row goes
        await manager.start(parts.heartbeat)
    if parts.kube is not None:
        await parts.kube.start(
            manager, parts.reconciler, parts.scheduler, parts.dispatcher, parts.cluster
        )
    if parts.jobs is not None:  # the Jobs listed before the first pass: Forbid sees them
        from reconciler.controller.jobs import JobSupervisor

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
    elif parts.single is not None:  # stopped after the runs; released as the stop begins
        await manager.start(parts.single)
    await manager.start(Runs(parts.dispatcher, options.shutdown_grace, manager.hurry))
    await manager.start(parts.control)
    parts.service.started = True
    _log_started(parts, options)
    heartbeat = parts.heartbeat
    await manager.start(
        Housekeeping(
            parts.store,
            parts.scheduler,
            parts.dispatcher,
            parts.metrics,
            interval=options.housekeeping_seconds,
            max_age=options.history_max_age,
            declarations=parts.reconciler,
            shared=options.db_url is not None,
            alone=[parts.me, *([parts.previous] if parts.previous else [])],
            beating=lambda: heartbeat.seen_beating if heartbeat is not None else (),
        )
    )
    if http is not None:
        service, metrics = parts.service, parts.metrics
        await manager.start(Http(lambda stopped: http(service, metrics, stopped)))


def log_starting(options: Options) -> None:
    """Said as ``crontask run`` starts (once its state directory and run store are open),
    before what may take long (a first git clone, listing CronTasks, a large folder): until
    "crontask started", which comes once the first pass is done, it says what the start waits
    on. Never a secret: the URLs lose their passwords and tokens (``redact_url``); a ``--db``
    that is no URL (the store refuses it) is not shown at all: its text may be a password."""
    db = options.db_url
    kube = options.kubernetes
    log.info(
        "crontask starting",
        extra={
            "fields": {
                "version": __version__,
                "pid": os.getpid(),
                "store": str(options.state_dir / DB_FILENAME) if db is None else redact_db_url(db),
                "paths": ",".join(str(p) for p in options.paths) or None,
                "git": redact_url(options.git.url) if options.git else None,
                "kubernetes": None
                if kube is None
                else ("*" if kube.all_namespaces else kube.namespace or "(current)"),
                "ha": True if options.ha else None,
            }
        },
    )


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
    as_root(os.geteuid())


def as_root(euid: int) -> None:
    """A word at start (after "crontask started", which scripts wait for) when crontask runs
    as root: its commands do too, and root reads any process's ``/proc`` files, so keeping
    crontask's own private (``host.keep_private``) does not keep its environment (the
    ``--db`` URL, tokens) nor its memory from them."""
    if euid == 0:
        log.warning(
            "running as root: commands run as root too and can read crontask's environment "
            "and memory (/proc/$PPID/environ); run crontask as an unprivileged user",
            extra={"fields": {"uid": euid}},
        )
