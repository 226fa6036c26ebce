"""The Kubernetes wiring of ``crontask run``: the CronTask source's connection, the status and
Event writers and what reports to them, and the job action's connection."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Collection

from reconciler.aio import in_thread
from reconciler.controller.cluster import Cluster
from reconciler.controller.components import Threaded
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.job_options import JobOptions
from reconciler.controller.jobs import JobSupport, job_support
from reconciler.controller.manager import Manager
from reconciler.controller.reconcile import PassResult, Reconciler
from reconciler.core.desired import Definition, SourceKind
from reconciler.core.runs import RunRecord
from reconciler.core.status import ObjectRef
from reconciler.scheduling.apscheduler import ApsScheduler
from reconciler.sinks.kubernetes import StatusWriter
from reconciler.sinks.kubernetes_events import EventRecorder
from reconciler.sinks.kubernetes_report import StatusReporter
from reconciler.sources.kubernetes import (
    Connection,
    KubernetesOptions,
    KubernetesSource,
    connect,
)
from reconciler.store.base import StoreUnavailable

log = logging.getLogger("crontask")


@dataclasses.dataclass
class Kubernetes:
    """The Kubernetes source, its status and Event writers, and what reports to them."""

    connection: Connection
    source: KubernetesSource
    writer: StatusWriter
    events: EventRecorder
    # The definition in force for a key, whichever source it comes from (the reconciler's,
    # from ``start`` on: before it, no pass has settled any key).
    in_force: Callable[[str], Definition | None] = lambda key: None

    def owner(self, key: str) -> ObjectRef | None:
        """The CronTask that owns the Jobs of ``key`` (their ownerReference, and where the job
        action looks for them): only when the definition in force for ``key`` is read from that
        CronTask. A task from a folder, git or the API that wins a key conflict over a CronTask
        gives its Jobs no owner: the losing object, deleted, must not take them with it (nor,
        in another namespace than theirs, have the garbage collector delete them at once)."""
        definition = self.in_force(key)
        if definition is None or definition.location.source != SourceKind.KUBERNETES:
            return None
        return self.source.object_ref(key)

    async def start(
        self,
        manager: Manager,
        reconciler: Reconciler,
        scheduler: ApsScheduler,
        dispatcher: Dispatcher,
        cluster: Cluster | None = None,
    ) -> None:
        """Start the writers first (they flush last); the CronTasks are listed and watched by
        the source's own ``watch`` (a component the runtime starts with the other sources)."""
        # Before the Job watch and the first pass: no Job is made or looked for before.
        self.in_force = lambda key: reconciler.desired.tasks.get(key)

        def fire_manual(key: str) -> RunRecord | None:
            definition = scheduler.owned().get(key)
            if definition is None or definition.location.source != SourceKind.KUBERNETES:
                return None
            return dispatcher.fire_manual(definition)

        report = StatusReporter(
            self.writer,
            self.events,
            mine=reconciler.mine,
            active=lambda key: tuple(dispatcher.active(key)),
            # The scheduler's own next fire time (None while suspended): what will happen,
            # not a second computation of it.
            next_run=lambda key, now: scheduler.next_fire_time(key),
            fire_manual=fire_manual,
            on_loop=_on_loop(asyncio.get_running_loop()),
            # A run a dead crontask left running in the status, ended in the store since by
            # ``recover`` or a heartbeat, neither of which tells the dispatcher's listeners.
            read_run=_run_reader(dispatcher),
            # One that store has no record of is lost only without replicas: another's run may
            # be kept in its memory while it is cut off from the shared store.
            lost_runs=cluster is None,
        )
        dispatcher.subscribe(report.on_run)
        dispatcher.subscribe_progress(report.on_progress)
        # A fenced replica writes no status (its tasks may be another's by now), and a write
        # queued before a handover is not sent after it; the fence lifted, the runs seen of the
        # tasks kept through it are stale (see kubernetes_report).
        self.writer.held = lambda: dispatcher.paused is not None
        self.writer.owns = reconciler.mine
        if cluster is not None:
            cluster.on_resumed = _both(cluster.on_resumed, report.resumed)

        def after_pass(result: PassResult) -> None:
            # A pass that compared no key (each status write comes back as a watch event, and
            # a status changes no definition) has nothing to report: reading every object for
            # it held the loop 0.2 s at 10 000 CronTasks, pass after pass, while their statuses
            # were written. A key whose object changed is compared; a deletion is one.
            if result.ok and (result.keys is None or result.keys):
                report.after_pass(
                    self.source.objects(), result.desired, scheduler.owned(), result.keys
                )

        reconciler.subscribe(after_pass)
        await manager.start(StatusWriting(self.writer, report))
        await manager.start(
            Threaded("events", self.events.start, lambda: self.events.stop(timeout=2.0))
        )


class StatusWriting(Threaded):
    """The status writer as a component: started first, it flushes last. It is ``Closing``:
    as soon as crontask begins to stop, the reporter starts no run-now and withdraws the values
    whose record is not written yet, before the runs stop (a run-now recorded then could not
    start, and the next crontask would not act on it)."""

    def __init__(self, writer: StatusWriter, report: StatusReporter) -> None:
        super().__init__("status-writer", writer.start, lambda: writer.stop(timeout=5.0))
        self._report = report

    def closing(self) -> None:
        self._report.close()


def _both(
    first: Callable[[Collection[str]], None], then: Callable[[Collection[str]], None]
) -> Callable[[Collection[str]], None]:
    def both(keys: Collection[str]) -> None:
        first(keys)
        then(keys)

    return both


def _run_reader(dispatcher: Dispatcher) -> Callable[[str], asyncio.Future[RunRecord | None]]:
    """Read a run's latest attempt in the store's threads (the dispatcher's recorder's); each
    read is kept until it is done (the loop holds its tasks weakly). None only when the store
    answered and no record of this process waits for it (one may be that run's): a store down
    raises (``StoreUnavailable``), and so does a read while records wait."""
    reads: set[asyncio.Future[RunRecord | None]] = set()

    async def latest(run_id: str) -> RunRecord | None:
        recorder = dispatcher.recorder
        waiting = recorder.pending  # before the read: a record written meanwhile is read
        record = await recorder.call(recorder.store.get, run_id)
        if record is None and waiting:
            raise StoreUnavailable(
                f"not in the run store yet, and {waiting} run records wait to be written there"
            )
        return record

    def read(run_id: str) -> asyncio.Future[RunRecord | None]:
        future = asyncio.ensure_future(latest(run_id))
        reads.add(future)
        future.add_done_callback(reads.discard)
        return future

    return read


def _on_loop(loop: asyncio.AbstractEventLoop) -> Callable[[Callable[[], None]], None]:
    """Run a callback of the writer's threads on ``loop``; dropped once the loop is closed
    (crontask has stopped: a run could not start)."""

    def call(callback: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(callback)

    return call


async def jobs(
    options: JobOptions, kube: Kubernetes | None, resync_seconds: float
) -> JobSupport | None:
    """The job action, with the CronTask source's connection or ``--kubeconfig`` alone."""
    if kube is not None:
        connection = kube.connection
    elif options.kubeconfig is not None:
        only = KubernetesOptions(kubeconfig=options.kubeconfig, context=options.context)
        connection = await in_thread(connect, only)
    else:
        return None
    return job_support(
        connection,
        options,
        all_namespaces=connection.watch is None,
        owner=kube.owner if kube is not None else lambda key: None,
        resync_seconds=resync_seconds,
        # Looked up at each call: ``start`` puts the reconciler's in place of the first.
        claimed=(lambda key: kube.in_force(key) is not None) if kube is not None else None,
        listed=kube.source.listed if kube is not None else lambda key: None,
        stops_with=(kube.source.informer,) if kube is not None else (),
    )


async def connect_to(options: KubernetesOptions, me: str) -> Kubernetes:
    connection = await in_thread(connect, options)
    api = connection.api
    source = KubernetesSource(api, connection.watch, resync_seconds=options.resync_seconds)
    return Kubernetes(connection, source, StatusWriter(api), EventRecorder(api, instance=me))
