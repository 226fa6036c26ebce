"""The running reconciler as its interfaces see it: the ``RuntimeView`` implementation.

Every method may be called from any thread (the API runs its handlers in worker threads).
State that the event loop mutates (the scheduler's jobs, the running runs, the desired state)
is read on the loop in one short snapshot; anything slow (fire-time computation, store reads,
file writes) happens in the calling thread.

Writes of API-owned tasks are made by :mod:`reconciler.controller.api_writes`. An API-owned
task's view (resource and version) is what the API source read, of one stored text: the
scheduler keeps the definition it was given while only metadata changes (plans compare specs).

With replicas, every replica lists every task (each with its owner) and accepts a manual run
of any of them: a task this replica does not own is run here, after the store is asked whether
another replica runs it now (the concurrency policy holds across replicas). The last runs the
list reads from the store (of the tasks another replica runs; of this replica's after a
restart, until one ends here) are read for all such tasks of a page at once
(``Service._stored_lasts``).

The definition errors and conflicts are formatted once per desired state (each pass replaces
it whole), and only those shown: the first ``SOURCE_PROBLEMS`` of each kind of source, the one
a task shows (``_Problems``). A request formatted all of them (63 000 errors: 0.16 s under the
GIL, a request; viewers polling /sources made a per-second task start late).

Every read of the store that an answer is made of (the list's, one task's last run) is bounded,
by the one ``OneRead`` of the store that the status page's reads share (``reads_of``): a store
that does not answer (a table locked, a connection gone silent) makes the list show what ended
here, and one task's answer StoreUnavailable (the API's 503), within ``LIST_READ_WAIT``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any, TypeVar

from reconciler.controller.api_writes import ON_LOOP_TIMEOUT, ApiWrites, Reconcile
from reconciler.controller.cluster import Cluster
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.lapse import UNREAD
from reconciler.controller.reconcile import Reconciler
from reconciler.controller.store_calls import StorePing, reads_of
from reconciler.controller.task_index import TaskIndexes
from reconciler.controller.view import (
    IfMatch,
    Members,
    MemberStatus,
    SourceRef,
    SourceStatus,
    TaskQuery,
    TaskView,
    Triggered,
    task_state,
)
from reconciler.core.desired import Definition, DesiredState, SourceKind
from reconciler.core.model import CronTask
from reconciler.core.problem_lines import Problem, subject
from reconciler.core.runs import RunRecord, RunStatus
from reconciler.scheduling.base import Scheduler, schedule_of
from reconciler.scheduling.wall_clock import listed_after
from reconciler.sinks.metrics import RunStoreState
from reconciler.sources.api import ApiSource
from reconciler.sources.base import Source
from reconciler.store.base import RunStore, StoreUnavailable

T = TypeVar("T")

NEXT_RUNS = 5
SOURCE_PROBLEMS = 100  # the definition errors a source lists (its count says how many in all)


@dataclasses.dataclass(frozen=True, slots=True)
class _Problems:
    """What the lists read of one desired state's errors and conflicts, made once for it."""

    desired: DesiredState  # kept: the cache is checked by identity, and an id is not reused
    flagged: dict[str, Problem]  # each flagged key's first error or conflict, not formatted
    tasks: dict[str, int]  # by kind of source: the definitions in force
    errors: dict[str, int]  # the definition errors and conflicts located there
    shown: dict[str, list[str]]  # the first SOURCE_PROBLEMS of those, formatted

    def of(self, key: str) -> str | None:
        problem = self.flagged.get(key)
        return None if problem is None else str(problem)


@dataclasses.dataclass(frozen=True, slots=True)
class _Entry:
    definition: Definition
    problem: str | None
    running: tuple[str, ...]
    version: str | None = None  # an API-owned task's: the version of ``definition``
    after: datetime | None = None  # one this replica schedules: the slot its scheduler waits for


class Service:
    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        store: RunStore,
        scheduler: Scheduler,
        dispatcher: Dispatcher,
        reconciler: Reconciler,
        reconcile: Reconcile,
        api: ApiSource,
        sources: Sequence[Source] = (),
        sync_requested: Callable[[str], bool] | None = None,
        cluster: Cluster | None = None,
        jobs: bool = True,
        job_watches: Callable[[], list[SourceStatus]] = list,
    ) -> None:
        self._loop = loop
        self._store = store
        self._scheduler = scheduler
        self._dispatcher = dispatcher
        self._reconciler = reconciler
        self._api = api
        self._writes = ApiWrites(
            loop=loop,
            scheduler=scheduler,
            reconciler=reconciler,
            reconcile=reconcile,
            api=api,
            jobs=jobs,
            view=self._written,
            on_loop=self._on_loop,
        )
        self._sources = list(sources)
        self._sync_requested = sync_requested
        self._cluster = cluster
        self._jobs = jobs
        self.job_watches = job_watches
        self.started = False  # the first pass has been applied
        self._last_runs: dict[str, RunRecord] = {}
        self._looked: set[str] = set()  # tasks whose last run was read from the store
        self._ping = StorePing(store.ping)
        self._reads = reads_of(store)  # shared with the status page's reads of ``store``
        self._problems = _problems(DesiredState(tasks={}))
        self._making = threading.Lock()  # one thread makes a new state's, the others wait
        self._indexes = TaskIndexes(reconciler)  # the keys in order, their search texts
        dispatcher.subscribe(self._remember)

    @property
    def store(self) -> RunStore:
        return self._store

    # -- reads ---------------------------------------------------------------------------

    def tasks(self, query: TaskQuery | None = None) -> list[TaskView]:
        q = query or TaskQuery()

        def scheduled() -> tuple[dict[str, Definition], DesiredState]:
            # A C-level copy on the loop; the sorting, filtering and views are made here.
            return dict(self._scheduler.owned()), self._reconciler.desired

        owned, desired = self._on_loop(scheduled)
        problems, declared = self._problems_of(desired).flagged, desired.tasks
        # Every task declared, whichever replica schedules it (the same set without replicas),
        # as ``_newest`` shows it: the few scheduled as another definition, apart.
        odd = {k: d for k, d in owned.items() if _newest(d, t := declared.get(k)) is not t}

        def matching() -> Iterator[str]:
            # Text before a view is made (10 000 views made to be dropped: 0.1 s a search).
            for key, text in self._indexes.of(desired).walk(q, odd):
                definition = odd[key] if key in odd else declared[key]
                # Whether it is flagged is all a state says: no line is formatted here.
                flagged = bool(definition.error) or key in problems
                state = task_state(definition.task.spec.suspend, "flagged" if flagged else None)
                if q.matches(key, definition.location.source, state, text):
                    yield key

        keys, limit = matching(), q.limit
        views: list[TaskView] = []
        reading = [not self._reads.down()]  # the store answers (``_stored_lasts``)
        replicas = self._reconciler.assignment is not None
        while True:
            # A key removed between the two hops to the loop is replaced by the next one: a
            # page short of its limit would tell a client (and the page) that nothing follows.
            wanted = None if limit is None else limit - len(views)
            picked = list(itertools.islice(keys, wanted))
            if not picked:
                return views
            entries = self._on_loop(self._snapshot, picked)
            shown = [k for k in picked if k in entries]
            elsewhere = [k for k in shown if k not in owned] if replicas else []
            unseen = [k for k in shown if k in owned and not self._known(k)]
            stored = self._stored_lasts(elsewhere, unseen, reading)
            for k in shown:
                last = stored[k] if k in stored else self._last_runs.get(k)
                views.append(self._view(entries[k], runs=1, last=last))
            if limit is None or len(views) >= limit:
                return views

    def _known(self, key: str) -> bool:
        return key in self._last_runs or key in self._looked

    def _stored_lasts(
        self, elsewhere: list[str], unseen: list[str], reading: list[bool]
    ) -> dict[str, RunRecord | None]:
        """The last runs of a page's tasks that the store has to tell, read for all of them at
        once (a read a task made a list of 10 000 tasks 6 to 15 times as slow):

        - ``elsewhere``: with replicas, the tasks another replica runs. Their runs end there,
          so the shared store's, fresh at each listing as one task's page, unless a run that
          ended here is newer (its end may not be stored yet).
        - ``unseen``: this replica's tasks that no run has ended here for yet (after a
          restart), read once a task (``_looked``: a run that ends here later replaces it; one
          still going is looked for again).

        Nothing once the store failed this listing (``reading``) or past ``LIST_READ_WAIT``
        (``OneRead``): those tasks show the runs that ended here, as before the store was read
        for them, and a list does not wait for a store that does not answer."""
        keys = elsewhere + unseen
        if not keys or not reading[0]:
            return {}
        # A read past the wait still settles the unseen tasks when it ends: one that always
        # takes longer (a slow store, a large page) is not made again at every listing.
        stored = self._reads(
            lambda: self._store.latest_many(keys), late=lambda late: self._restore(unseen, late)
        )
        if stored is None:
            reading[0] = False
            return {}
        lasts = {k: _later(stored.get(k), self._last_runs.get(k)) for k in elsewhere}
        return lasts | self._restore(unseen, stored)

    def _restore(
        self, unseen: list[str], stored: dict[str, RunRecord]
    ) -> dict[str, RunRecord | None]:
        lasts: dict[str, RunRecord | None] = {}
        for key in unseen:
            last = stored.get(key)
            if last is None or last.status is not RunStatus.RUNNING:
                self._looked.add(key)
            if last is not None and last.status is not RunStatus.RUNNING:
                last = self._last_runs.setdefault(key, last)  # unless one ended here meanwhile
            lasts[key] = last
        return lasts

    def task(self, key: str) -> TaskView | None:
        """StoreUnavailable when the store does not answer its last run within
        ``LIST_READ_WAIT`` (or is not asked: ``OneRead``), as when it is down."""
        self._problems_of(self._reconciler.desired)  # made here, not on the loop
        entries = self._on_loop(self._snapshot, [key])
        if key not in entries:
            return None
        last = self._reads.answer(lambda: self._store.latest(key))
        return self._view(entries[key], runs=NEXT_RUNS, last=last)

    def _written(self, key: str) -> TaskView | None:
        """The answer to a write of an API task: ``task``, with the last run that ended here
        when the store does not answer. The write is stored and in force by then, so a 503
        would tell the caller to make again what is made (a create retried is a conflict)."""
        try:
            return self.task(key)
        except StoreUnavailable:
            entries = self._on_loop(self._snapshot, [key])
            if key not in entries:
                return None
            return self._view(entries[key], runs=NEXT_RUNS, last=self._last_runs.get(key))

    def readiness(self) -> dict[str, bool]:
        """Within ``PING_TIMEOUT``, whatever the store does (see :class:`StorePing`)."""
        return {
            "sources": self.started,
            "scheduler": self.started,
            "store": self._ping.answers(),
        }

    def run_store(self) -> RunStoreState:
        """What /metrics shows of the run store, without waiting for it: the readiness
        check's last answer (``StorePing.seen``) and the recorder's records waiting or
        dropped. A pod scraped directly stays up through an outage, so this says it."""
        recorder = self._dispatcher.recorder
        return RunStoreState(self._ping.seen(), recorder.pending, recorder.dropped)

    def sources(self) -> list[SourceStatus]:
        # Replaced whole by each pass: a consistent view, counted once (``_Problems``).
        problems = self._problems_of(self._reconciler.desired)
        found = []
        for source in self._sources:
            state = source.status()
            found.append(
                SourceStatus(
                    kind=source.kind,
                    location=state.location,
                    tasks=problems.tasks.get(source.kind, 0),
                    errors=problems.errors.get(source.kind, 0),
                    revision=state.revision,
                    attempted_revision=state.attempted_revision,
                    last_sync=state.last_sync,
                    last_attempt=state.last_attempt,
                    last_error=state.last_error,
                    sync_failures=state.sync_failures,
                    problems=tuple(problems.shown.get(source.kind, ())),
                )
            )
        return found

    def members(self) -> Members | None:
        cluster = self._cluster
        if cluster is None:
            return None
        seen = cluster.disagreement  # both replaced whole by the cluster's renewals
        items = tuple(
            MemberStatus(
                id=m.id,
                address=m.address,
                since=m.since,
                renewed=m.renewed,
                owned=m.owned,
                digest=m.digest,
                revision=m.revision,
                draining=m.draining,
                me=m.id == cluster.me.id,
                version=m.version,
            )
            for m in cluster.members
        )
        # Fenced: not renewed within the deadline (Cluster._fence_if_late). Not while the runs
        # are held after a lapse for the slots unread (UNREAD): the renewals work, the list is new.
        at, fenced = cluster.listed_at, cluster.dispatcher.paused not in (None, UNREAD)
        if seen is None:
            return Members(items, live=cluster.live_count, listed_at=at, fenced=fenced)
        return Members(items, seen.since, seen.tasks, cluster.live_count, at, fenced)

    def sync_now(self, kind: str) -> bool:
        return self._sync_requested(kind) if self._sync_requested else False

    def in_force(self) -> Mapping[str, Definition]:
        # Replaced whole by each pass, never modified (core.desired.reassemble): no loop hop.
        return self._reconciler.desired.tasks

    def runs_jobs(self) -> bool:
        return self._jobs

    def replacing(self, run_id: str) -> bool:
        # No loop hop (``Dispatcher.replacing``): the answer to a run-now asks it again and
        # again while it waits, and a busy loop would hold each ask.
        return self._dispatcher.replacing(run_id)

    # -- actions -------------------------------------------------------------------------

    def trigger(self, key: str) -> Triggered:
        def fire() -> Triggered:
            definition = self._scheduler.owned().get(key)
            if definition is None and not self._reconciler.mine(key):
                # Another replica schedules it: it runs here all the same.
                definition = self._reconciler.desired.tasks.get(key)
            if definition is None:
                raise KeyError(key)
            # With the definition it fired by, read here on the loop: a pass queued behind
            # this fire may change or remove the task before the caller reads anything.
            record = self._dispatcher.fire_manual(definition)
            return Triggered.of(record, definition, self._dispatcher.start_of(record))

        return self._on_loop(fire)

    def create_api_task(self, task: CronTask) -> TaskView:
        return self._writes.create(task)

    def put_api_task(
        self, task: CronTask, *, if_match: IfMatch | None = None
    ) -> tuple[TaskView, bool]:
        return self._writes.put(task, if_match=if_match)

    def delete_api_task(self, key: str, *, if_match: IfMatch | None = None) -> None:
        self._writes.delete(key, if_match=if_match)

    # -- details -------------------------------------------------------------------------

    def _problems_of(self, desired: DesiredState) -> _Problems:
        """``desired``'s ``_Problems``, made once: by the first thread that asks after a pass
        (any other waits for it rather than make them too). One of a state a pass has replaced
        since (a request that read it before) is made for that request, not kept."""
        if (made := self._problems).desired is desired:
            return made
        with self._making:
            if (made := self._problems).desired is desired:
                return made
            made = _problems(desired)
            if desired is self._reconciler.desired:
                self._problems = made
            return made

    def _snapshot(self, keys: Sequence[str]) -> dict[str, _Entry]:
        """On the loop: what each task runs on and why it may be flagged."""
        owned = self._scheduler.owned()
        desired = self._reconciler.desired
        problems = self._problems_of(desired)  # made by the caller, mostly (``task``)
        entries: dict[str, _Entry] = {}
        for key in keys:
            # What this replica schedules, else what another one does (with replicas).
            declared = desired.tasks.get(key)
            scheduled = owned.get(key)
            definition = declared if scheduled is None else _newest(scheduled, declared)
            if definition is None:
                continue
            version = None
            if definition.location.source == SourceKind.API:
                # The text the API stored and its version, read together: the scheduler's
                # definition is older when only the metadata changed.
                stored = self._api.stored(key)
                if stored is not None and stored.definition is not None:
                    definition, version = stored.definition, stored.version
            problem = definition.error or problems.of(key)
            running = tuple(r.id for r in self._dispatcher.active(key))
            after = None
            if scheduled is not None and scheduled.hash == definition.hash:
                after = self._scheduler.next_fire_time(key)
            entries[key] = _Entry(definition, problem, running, version, after)
        return entries

    def _view(self, entry: _Entry, *, runs: int, last: RunRecord | None) -> TaskView:
        definition = entry.definition
        spec = definition.task.spec
        next_runs: tuple[datetime, ...] = ()
        if not spec.suspend:
            # Not before the slot the scheduler waits for: after the wall clock went back, no
            # slot runs until it passes that one again (README), and /metrics shows it too.
            slots = schedule_of(definition)
            start = listed_after(slots, datetime.now(UTC), entry.after)
            next_runs = tuple(slots.fire_times(start, runs))
        return TaskView(
            key=definition.key,
            resource=definition.task.to_document(),
            source=SourceRef.of(definition),
            error=entry.problem,
            suspended=spec.suspend,
            running=entry.running,
            next_runs=next_runs,
            last_run=last,
            version=entry.version,
            owner=self._reconciler.owner(definition.key),
        )

    def _remember(self, record: RunRecord) -> None:
        if record.status is not RunStatus.RUNNING:
            self._last_runs[record.task] = record

    def _on_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """Call ``fn`` on the event loop and return its result (from any other thread)."""
        result: Future[T] = Future()

        def call() -> None:
            try:
                result.set_result(fn(*args))
            except BaseException as err:
                result.set_exception(err)

        self._loop.call_soon_threadsafe(call)
        return result.result(ON_LOOP_TIMEOUT)


def _problems(desired: DesiredState) -> _Problems:
    """O(tasks + errors + conflicts), formatting only the lines kept for the sources."""
    flagged: dict[str, Problem] = {}
    for error in desired.errors:
        if error.key:
            flagged.setdefault(error.key, error)
    for conflict in desired.conflicts:
        flagged.setdefault(conflict.key, conflict)
    tasks: dict[str, int] = {}
    for definition in desired.tasks.values():
        tasks[definition.location.source] = tasks.get(definition.location.source, 0) + 1
    errors: dict[str, int] = {}
    kept: dict[str, list[Problem]] = {}
    # A conflict is located in every source that declares its key (DESIGN §2: "reported on
    # both"): the owner of a shadowed file must see it; once a kind (as the gauge).
    for problem in itertools.chain[Problem](desired.errors, desired.conflicts):
        for kind in subject(problem)[1]:
            errors[kind] = errors.get(kind, 0) + 1
            if len(found := kept.setdefault(kind, [])) < SOURCE_PROBLEMS:
                found.append(problem)
    shown = {kind: [str(p) for p in found] for kind, found in kept.items()}
    return _Problems(desired, flagged, tasks, errors, shown)


def _later(stored: RunRecord | None, here: RunRecord | None) -> RunRecord | None:
    """The newer of a task's record in the store and the run that last ended here, by the
    stores' order (slot, id, attempt); the one here for the same attempt (it has ended)."""
    if stored is None or here is None:
        return here or stored
    order = [(r.scheduled_at, r.id, r.attempt) for r in (stored, here)]
    return stored if order[0] > order[1] else here


def _newest(scheduled: Definition, declared: Definition | None) -> Definition:
    """What a task view shows of a scheduled task: the declaration when its spec is the one
    scheduled (a file renamed, a label or a line above it changed, a last good definition
    now flagged: the scheduler's copy, unchanged by such a pass, is older), else what runs."""
    if declared is not None and declared.hash == scheduled.hash:
        return declared
    return scheduled
