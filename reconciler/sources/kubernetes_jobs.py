"""The Jobs crontask created, watched; and the calls the ``job`` action makes on them.

Contract:

- :class:`JobWatch` keeps a cache of the batch/v1 Jobs that carry the ``crontask.dev/run-id``
  label (only Jobs crontask created; any other Job is never listed, so never touched), with
  the same list+watch machinery as CronTasks (:class:`~reconciler.sources.kubernetes_watch.
  Informer`: bookmarks, 410 re-list, backoff, resync). One informer for the whole cluster
  (``namespaces=None``), or one per namespace Jobs go to, started on demand (:meth:`watch`),
  at most :data:`MAX_NAMESPACES` at a time. :meth:`let_go` stops the watch of a namespace
  started on demand once its owner says nothing goes there any more and its cache holds no
  Job of a task (as :meth:`jobs_of` judges them): the bound is on the namespaces in use, not
  on every namespace a definition ever named.
- Reads happen on the event loop, from the cache: :meth:`live` (the Jobs of a task that are
  not finished and not being deleted, or being deleted with pods still active: a finalizer
  holds it), :meth:`jobs_of`, :meth:`cached`. A Job is a task's
  (:meth:`jobs_of`, :meth:`live`) only as the ``home`` given to :meth:`trust` says
  (``core.jobs.run_in``: the task's Job namespace, the name of one of its slots, its
  CronTask's uid), never by its annotations alone; before :meth:`trust`, no Job is. For
  clean-up, :meth:`jobs_of` also answers the Jobs of a task no CronTask controls in the other
  namespaces the watch covers, each as ``run_in`` judges it for its own namespace: the Jobs
  left where an earlier definition put them (``spec.job.namespace`` changed) go by the
  history limits and with the task (a namespace no longer watched is not looked at).
  :meth:`former_jobs` answers, of a task a CronTask holds, the Jobs nothing controls that
  are named as its slots (made while a folder, git or the API held the key, or kept by an
  orphaning delete of an earlier CronTask of that name): never its runs, only for clean-up
  to judge by its run store.
  Changes reach the loop (``call_soon_threadsafe``), where they wake :meth:`finished` waiters
  and call the listeners (``subscribe``) with the keys of the tasks whose Jobs changed.
- :meth:`ended` answers the last state the watch saw of a Job whose outcome the cluster had
  decided (``core.jobs.decided``: its terminal condition, or the ``SuccessCriteriaMet``/
  ``FailureTarget`` that Kubernetes 1.31+ writes first), also once the Job is gone: a Job
  deleted as soon as it ends or is decided (by a TTL controller, by hand) still tells its
  outcome to the run that follows it. It is taken on the watch's thread, at the event
  itself, as the cache may no longer hold it when the loop gets to look; the newest
  :data:`ENDED_KEPT` are kept.
- API calls (:meth:`create`, :meth:`get`, :meth:`delete`, :meth:`pods`, :meth:`log_tail`) are
  ``sources.job_calls``' (:class:`~reconciler.sources.job_calls.JobCalls`, which this extends).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reconciler.core.jobs import (
    RUN_LABEL,
    controller_of,
    decided,
    finished,
    is_deleting,
    run_in,
    run_of,
)
from reconciler.sources.end_reads import JobApiError
from reconciler.sources.job_calls import JobCalls
from reconciler.sources.kubernetes_watch import Informer, object_key, stop_all
from reconciler.sources.pod_logs import CONTROLLER_UID

log = logging.getLogger("crontask.sources")

Listener = Callable[[set[str]], None]
Home = Callable[[str], tuple[str, str | None]]

MAX_NAMESPACES = 64  # namespaces with a watch of their own (not with one cluster-wide watch)
ENDED_KEPT = 1024  # the last terminal states of Jobs, for runs whose Job is gone at once


def held(job: dict[str, Any]) -> bool:
    """Whether a Job being deleted still has pods running, a finalizer keeping it: it runs."""
    active = (job.get("status") or {}).get("active")
    return is_deleting(job) and isinstance(active, int) and active > 0


class JobWatch(JobCalls):
    def __init__(
        self,
        api: Any,
        namespaces: Collection[str] | None,
        *,
        resync_seconds: float = 300.0,
        api_threads: int = 8,
        stops_with: Collection[Informer] = (),
    ) -> None:
        super().__init__(api, api_threads)
        self._api, self._stops_with = api, stops_with  # the latter: waited for with its own
        self._cluster_wide = namespaces is None
        self._wanted = set(namespaces or ())
        self._fixed = frozenset(self._wanted)  # watched for good; the others, while in use
        self._resync = resync_seconds
        self._informers: dict[str | None, Informer] = {}
        self._starting: dict[str, asyncio.Future[bool]] = {}  # informers on their first list
        self._loop: asyncio.AbstractEventLoop | None = None
        self._by_task: dict[str, set[str]] = {}  # task key -> job keys ("ns/name")
        self._task_of: dict[str, str] = {}  # job key -> task key
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._listeners: list[Listener] = []
        self._home: Home | None = None
        self._ended: OrderedDict[str, dict[str, Any]] = OrderedDict()  # job key -> last end
        self._ended_lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop, wait: float = 30.0) -> bool:
        """Start the informers; wait up to ``wait`` seconds in all for their first lists.
        Blocking. They list at once, each in its thread: an API server that is down costs
        ``wait`` once, not once per namespace."""
        self._loop = loop
        targets: list[str | None] = [None] if self._cluster_wide else [*sorted(self._wanted)]
        with ThreadPoolExecutor(
            max(1, len(targets)), thread_name_prefix="crontask-jobs-start"
        ) as pool:
            synced = list(
                pool.map(lambda namespace: self._start_informer(namespace, wait), targets)
            )
        return all(synced)

    def stop(self) -> None:
        stop_all([*self._informers.values(), *self._stops_with])  # one wait, however many
        self.close_calls()

    @property
    def synced(self) -> bool:
        return all(i.synced for i in list(self._informers.values()))

    def _start_informer(self, namespace: str | None, wait: float) -> bool:
        if namespace in self._informers:
            return self._informers[namespace].synced
        informer = Informer(
            self._list_function(namespace),
            on_change=self._changed_from_thread,
            resync_seconds=self._resync,
            name=f"job-watch-{namespace or 'all'}",
        )
        self._informers[namespace] = informer
        synced = informer.start(wait)
        if not synced:
            log.warning(
                "jobs: the first list has not succeeded yet; will keep trying",
                extra={"fields": {"namespace": namespace, "error": informer.last_error}},
            )
        return synced

    async def watch(self, namespace: str) -> None:
        """Make sure the Jobs of ``namespace`` are watched (listed before this returns, or
        after 30 s of trying). Raises :class:`JobApiError` past :data:`MAX_NAMESPACES`: a
        definition cannot make crontask start a thread per namespace without bound."""
        if self._cluster_wide or namespace in self._informers:
            return
        starting = self._starting.get(namespace)
        if starting is None:
            if len(self._informers) + len(self._starting) >= MAX_NAMESPACES:
                # No hint at --all-namespaces: it also reads the CronTasks of every namespace.
                raise JobApiError(
                    f"Jobs are watched in at most {MAX_NAMESPACES} namespaces at a time; "
                    f"{namespace} would be one more (a namespace is let go once no task puts "
                    "Jobs there and it holds none of crontask's Jobs to follow or clean up)"
                )
            self._wanted.add(namespace)
            starting = asyncio.ensure_future(
                asyncio.to_thread(self._start_informer, namespace, 30.0)
            )
            self._starting[namespace] = starting
            starting.add_done_callback(lambda _: self._starting.pop(namespace, None))
        await asyncio.shield(starting)

    def namespaces(self) -> set[str]:
        """The namespaces watched on their own (none with one cluster-wide watch)."""
        return {namespace for namespace in self._informers if namespace is not None}

    def informers(self) -> dict[str | None, Informer]:
        """The watches by namespace (None: the cluster-wide one), to read their state."""
        return dict(self._informers)  # a copy: one may be added from a thread meanwhile

    def idle(self, namespaces: Collection[str]) -> set[str]:
        """Those of ``namespaces`` whose watch :meth:`let_go` would stop: started on demand,
        listed, and their cache holds no Job of a task."""
        return {namespace for namespace in namespaces if self._idle(namespace)}

    def _idle(self, namespace: str) -> bool:
        informer = self._informers.get(namespace)
        if informer is None or namespace in self._fixed or namespace in self._starting:
            return False
        if self._home is None:
            return False  # no Job is a task's yet: none could be told from another
        # One never listed (refused, say) holds nothing crontask could follow or clean up.
        for job in informer.snapshot().values():
            run = run_of(job)
            if run is None:
                continue
            home, owner_uid = self._home(run.task)
            # As _mine judges: followed, counted and cleaned up from here. A Job that is no
            # task's (misnamed, controlled by another) is never touched, so holds nothing.
            if namespace != home and owner_uid is not None:
                continue
            if run_in(job, run.task, namespace, owner_uid) is not None:
                return False
        return True

    async def let_go(self, namespaces: Collection[str]) -> list[str]:
        """Stop the watches of those of ``namespaces`` that are :meth:`idle`; the caller says
        no task puts Jobs there and no run follows one there. Returns the namespaces let go; a
        later :meth:`watch` starts one again."""
        gone = sorted(self.idle(namespaces))
        informers = [self._informers.pop(namespace) for namespace in gone]
        for namespace in gone:
            self._wanted.discard(namespace)
            for key in [k for k in self._task_of if k.startswith(f"{namespace}/")]:
                self._by_task.get(self._task_of.pop(key), set()).discard(key)
            log.info(
                "jobs: namespace no longer watched", extra={"fields": {"namespace": namespace}}
            )

        def stop() -> None:  # each joins its thread: off the loop
            for informer in informers:
                informer.stop()

        if informers:
            await asyncio.to_thread(stop)
        return gone

    def _list_function(self, namespace: str | None) -> Callable[..., Any]:
        # The informer asks for the raw response and reads it itself: plain dicts, as it keeps
        # them (no typed models: faster, and exact), bounded in depth (a Job's managedFields
        # can nest deep) and in time (a body that trickles).
        batch = self._batch
        if namespace is None:
            return functools.partial(batch.list_job_for_all_namespaces, label_selector=RUN_LABEL)
        return functools.partial(batch.list_namespaced_job, namespace, label_selector=RUN_LABEL)

    # -- the cache, on the loop ----------------------------------------------------------------

    def _changed_from_thread(self, keys: set[str]) -> None:
        # On the watch's thread, right after the event: a DELETED that follows at once would
        # leave nothing of the ended Job in the cache by the time the loop looks. Kept from its
        # decision on (1.31+: SuccessCriteriaMet/FailureTarget before Complete/Failed), as a
        # Job may be deleted while its pods terminate, before its terminal condition comes.
        ended = {k: job for k, job in self._snapshot(keys).items() if decided(job) is not None}
        if ended:
            with self._ended_lock:
                for key, job in ended.items():
                    self._ended[key] = job
                    self._ended.move_to_end(key)
                while len(self._ended) > ENDED_KEPT:
                    self._ended.popitem(last=False)
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(self._changed, keys)

    def _changed(self, keys: set[str]) -> None:
        self.api_answered()  # a list or an event: the API server answers
        tasks: set[str] = set()
        jobs = self._snapshot(keys)
        for key in keys:
            before = self._task_of.pop(key, None)
            if before is not None:
                self._by_task.get(before, set()).discard(key)
                tasks.add(before)
            job = jobs.get(key)
            run = run_of(job) if job is not None else None
            if run is not None:
                self._task_of[key] = run.task
                self._by_task.setdefault(run.task, set()).add(key)
                tasks.add(run.task)
            for waiter in self._waiters.pop(key, []):
                if not waiter.done():
                    waiter.set_result(None)
        for listener in self._listeners:
            try:
                listener(tasks)
            except Exception:
                log.exception("job listener failed")

    def _snapshot(self, keys: Collection[str] | None = None) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        if keys is not None and not keys:
            return found  # the common case for a task without Jobs: nothing to look at
        # A copy: an informer for a new namespace may be added from a thread meanwhile.
        for informer in list(self._informers.values()):
            found.update(informer.snapshot(keys))
        return found

    def _seen(self) -> list[dict[str, Any]]:
        with self._ended_lock:
            ended = list(self._ended.values())
        return [*self._snapshot().values(), *ended]

    def subscribe(self, listener: Listener) -> None:
        """``listener(task keys)`` is called on the loop when Jobs of those tasks change."""
        self._listeners.append(listener)

    def cached(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._snapshot([f"{namespace}/{name}"]).get(f"{namespace}/{name}")

    def ended(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The last state seen of the Job ``namespace/name`` once its outcome was decided
        (``core.jobs.decided``), even once it is gone (None: none seen). The caller checks
        its uid."""
        with self._ended_lock:
            return self._ended.get(f"{namespace}/{name}")

    def watched(self, namespace: str) -> bool:
        """Whether the cache covers ``namespace`` and has been listed."""
        informer = self._informers.get(None if self._cluster_wide else namespace)
        return informer is not None and informer.synced

    def trust(self, home: Home) -> None:
        """``home(task)``: the namespace of the task's Jobs and the uid of the CronTask that
        must control them (None: no owner to check)."""
        self._home = home

    def jobs_of(self, task: str) -> list[dict[str, Any]]:
        """Every cached Job of ``task``, in any namespace the watch covers (see the module
        docstring: not every Job that says it is)."""
        return self._mine(task, everywhere=True)

    def _mine(self, task: str, *, everywhere: bool) -> list[dict[str, Any]]:
        if self._home is None:
            return []
        home, owner_uid = self._home(task)
        found = []
        for job in self._snapshot(self._by_task.get(task, ())).values():
            namespace = str((job.get("metadata") or {}).get("namespace"))
            # A CronTask's Jobs are in its namespace only (an ownerReference cannot cross
            # namespaces); another task's may be where an earlier definition put them.
            if namespace != home and (not everywhere or owner_uid is not None):
                continue
            if run_in(job, task, namespace, owner_uid) is not None:
                found.append(job)
        return found

    def former_jobs(self, task: str) -> list[dict[str, Any]]:
        """The cached Jobs of ``task`` that nothing controls, in any namespace the watch
        covers, while a CronTask holds its key: each a Job ``run_in`` would take for the
        task's, were it from a folder, git or the API (as it was when it made them, unless an
        orphaning delete of an earlier CronTask of that name dropped its reference). Never
        its runs (:meth:`jobs_of`, :meth:`live`: anyone who may create a Job there can make
        one): only the clean-up looks at them, and deletes those whose run its store records."""
        if self._home is None or self._home(task)[1] is None:
            return []
        found = []
        for job in self._snapshot(self._by_task.get(task, ())).values():
            namespace = str((job.get("metadata") or {}).get("namespace"))
            if controller_of(job) is None and run_in(job, task, namespace) is not None:
                found.append(job)
        return found

    def tasks(self) -> set[str]:
        """The task keys that have Jobs in the cache."""
        return {task for task, jobs in self._by_task.items() if jobs}

    def live(self, task: str) -> list[dict[str, Any]]:
        """The Jobs of ``task`` that still run, in its Job namespace: not finished, and not being
        deleted unless its pods still run (``status.active``): a finalizer (a backup operator's)
        holds a deleted Job Terminating while the garbage collector leaves its pods be, and
        the policies must not start another beside it."""
        jobs = self._mine(task, everywhere=False)
        return [j for j in jobs if finished(j) is None and (not is_deleting(j) or held(j))]

    def when_changed(self, namespace: str, name: str) -> asyncio.Future[None]:
        """Set when the cached Job ``namespace/name`` next changes (or appears, or goes),
        counting from this call; cancelled, it is forgotten."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        key = f"{namespace}/{name}"
        self._waiters.setdefault(key, []).append(waiter)

        def forget(done: asyncio.Future[None]) -> None:
            waiting = self._waiters.get(key, [])
            with contextlib.suppress(ValueError):
                waiting.remove(done)
            if not waiting:
                self._waiters.pop(key, None)

        waiter.add_done_callback(forget)
        return waiter


__all__ = ["CONTROLLER_UID", "JobApiError", "JobWatch", "object_key"]
