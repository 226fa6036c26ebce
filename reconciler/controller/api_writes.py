"""Writes of API-owned tasks (create, replace, delete): the part of the service
(:mod:`reconciler.controller.service`) that changes what the API owns. Called from any thread
(the API's workers): what the event loop mutates is read through the service's hop to the loop.

Tasks created through the API belong to the API source (``reconciler.sources.api``): files
under the state directory, or with replicas the shared run store. Writes of one key are
serialised in this process (a lock per key held from the check to the change being in force)
and conditional in the store itself (so replicas writing one key cannot both win): a second
create is ``AlreadyExists``, a write conditional on a version that has moved on is
``VersionMismatch``; before that 412 (or the 404 of a task no longer stored) the key is read
again if the store holds another version than the one in force (``_read_again``), so that the
read the answer asks for sees it. A write without ``If-Match`` is not conditional for its
caller: when another replica wins the store's check, it reads again and writes over (the last
writer wins), up to ``WRITE_ATTEMPTS`` times, then TimeoutError. A task whose stored YAML would
be over the limit the API source reads, or that the API source would not read back, is refused
before anything is written (``TaskTooLarge``, ``InvalidDefinition``), as is one that would take
the API's tasks over their bounds (``NoRoom``). That check and the room it finds are one step
for every key (``_reserved``): a write's text counts as stored from its check until it is over,
so writes made at once in this process never take the API over its bounds together. Replicas
check what each last read, and writes at once on several may still go a few tasks over.

A change is answered once the pass that applies it is done. If that pass fails, the change
stays stored (undoing it would lose the user's write, and the loop retries the pass): the
answer is ``NotInForce``. If the pass worked but the task is not the API's (another source
declared the key meanwhile), the write is undone.

A task a file, a git commit or a CronTask declares is not the API's to create (``OwnedElsewhere``,
a 409), also when that declaration has not had its pass yet: the API's definition would win the
conflict (its location sorts first) and take the task over. So a create first re-reads the other
sources for its key (``_read_others``), and a create whose pass finds the key declared elsewhere
too (a pass of another source came between) is undone.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Collection, Coroutine, Iterator, Mapping
from typing import Any, Protocol, TypeVar

from reconciler.controller.job_options import NO_CONNECTION_REASON
from reconciler.controller.reconcile import PassResult, Reconciler
from reconciler.controller.view import (
    FieldError,
    IfMatch,
    InvalidDefinition,
    OwnedElsewhere,
    SourceRef,
    TaskView,
    VersionMismatch,
)
from reconciler.controller.writes import KeyedLocks, check_version, stored_text
from reconciler.core.api_tasks import (
    MISSING,
    AlreadyExists,
    NotInForce,
    check_room,
)
from reconciler.core.desired import Definition, SourceKind
from reconciler.core.model import CronTask
from reconciler.scheduling.base import Scheduler
from reconciler.sources.api import (
    ApiSource,
    ApiTasksUnavailable,
    UnreadableText,
    text_version,
)
from reconciler.sources.files import DirectorySource
from reconciler.sources.limits import excerpt
from reconciler.store import StoreUnavailable

T = TypeVar("T")

Reconcile = Callable[[Mapping[str, Collection[str]]], Coroutine[Any, Any, PassResult]]
ON_LOOP_TIMEOUT = 30.0
# How long a pass that only tells (``_read_again`` before a 412 or a 404, the API source's
# error before a 503) is waited for, the key's lock held: the answer is the same without it,
# and behind a slow resync a 412 that was instant waited ON_LOOP_TIMEOUT, the key's other
# writes waiting meanwhile. A pass not done by then is the loop's to finish.
TELLING_TIMEOUT = 2.0
# Reads and writes of one key without If-Match, each beaten by another replica's write,
# before the answer is a 503: two replicas settle in two.
WRITE_ATTEMPTS = 5
PASS_ERROR = 200  # characters of a failed pass's error an answer quotes


class OnLoop(Protocol):
    """Calls ``fn`` on the event loop and returns its result (from any other thread)."""

    def __call__(self, fn: Callable[..., T], *args: Any) -> T: ...


class ApiWrites:
    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        scheduler: Scheduler,
        reconciler: Reconciler,
        reconcile: Reconcile,
        api: ApiSource,
        jobs: bool,
        view: Callable[[str], TaskView | None],
        on_loop: OnLoop,
    ) -> None:
        self._loop = loop
        self._jobs = jobs  # whether this crontask can create Kubernetes Jobs
        self._scheduler = scheduler
        self._reconciler = reconciler
        self._reconcile = reconcile
        self._api = api
        self._locks = KeyedLocks()
        self._room = threading.Lock()  # held to check room and reserve it, for every key
        self._in_flight: dict[str, tuple[int, str]] = {}  # key: its write's size and version
        self._view = view  # the service's view of one task, as a write answers it
        self._on_loop = on_loop

    def create(self, task: CronTask) -> TaskView:
        self._check_runnable(task)
        text = stored_text(task)
        with self._writing(task.key):
            self._read_others(task.key)
            self._check_owner(task.key)
            with self._reserved(task.key, text, None):
                return self._write(task.key, text, None)

    def put(self, task: CronTask, *, if_match: IfMatch | None = None) -> tuple[TaskView, bool]:
        self._check_runnable(task)
        text = stored_text(task)
        with self._writing(task.key):
            if self._api.store.version(task.key) is None:
                self._read_others(task.key)  # a create
            self._check_owner(task.key)
            for _ in range(WRITE_ATTEMPTS):
                previous = self._api.store.load([task.key]).get(task.key)
                current = None if previous is None else text_version(previous)
                with self._read_again_if_refused(task.key):
                    check_version(task.key, current, if_match)
                try:
                    # The store checks again, atomically: another replica may have written
                    # meanwhile.
                    with self._reserved(task.key, text, previous):
                        return self._write(task.key, text, previous), current is None
                except (AlreadyExists, VersionMismatch):
                    if if_match is not None:
                        self._read_again(task.key)
                        raise  # the caller's condition: a 412
                    # Unconditional for the caller: read what won, and write over it.
        raise TimeoutError(
            f"task {task.key} was written by others {WRITE_ATTEMPTS} times while this write "
            "was being made"
        )

    def delete(self, key: str, *, if_match: IfMatch | None = None) -> None:
        with self._writing(key):
            current = self._api.store.version(key)
            if current is None:
                self._read_again(key)  # removed by something else: a GET says 404 too
                self._check_owner(key)
                raise KeyError(key)
            with self._read_again_if_refused(key):
                check_version(key, current, if_match)
            # Without If-Match whatever is stored goes, also if another replica wrote it since
            # the read (the last writer wins, as with PUT); a removal it beat us to is a 404.
            try:
                self._api.store.remove(key, expect=None if if_match is None else current)
            except KeyError:
                self._apply(key)  # gone from the store: from the schedule too, here and now
                if if_match is None:
                    raise
                raise VersionMismatch(key, None) from None
            except VersionMismatch:
                self._read_again(key)
                raise
            self._check_removed(key, self._apply(key))

    # -- details -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _read_again_if_refused(self, key: str) -> Iterator[None]:
        """:meth:`_read_again` before a VersionMismatch raised in the block goes on."""
        try:
            yield
        except VersionMismatch:
            self._read_again(key)
            raise

    def _read_again(self, key: str) -> None:
        """Before a 412 ("read it again") or a 404: if the store holds another version of
        ``key`` than the one in force (changed by something else than this crontask: a file
        edited or removed by hand, a write of another replica not yet polled), a pass reads
        the key now, so that the GET the answer asks for gives the stored version as its ETag
        (and what it holds, or the error that it does not read). A GET answers what is in
        force, with the version of that very text: reading the store for it instead would
        show a task that does not run. Without this the ETag stayed stale until the next
        resync, and every PUT with it was a 412. A pass that does not end within
        TELLING_TIMEOUT is the loop's to finish: the answer is still the 412 (or 404)."""
        stored = self._api.store.version(key)
        read = self._api.stored(key)
        if stored != (None if read is None else read.version):
            with contextlib.suppress(TimeoutError):
                self._apply(key, TELLING_TIMEOUT)

    def _check_runnable(self, task: CronTask) -> None:
        """A task this crontask could not run is refused before anything is written: stored,
        it would be an error of its key, and a replaced task would stop running."""
        if task.spec.job is not None and not self._jobs:
            raise InvalidDefinition([FieldError(("spec", "job"), NO_CONNECTION_REASON)])

    @contextlib.contextmanager
    def _writing(self, key: str) -> Iterator[None]:
        with self._locks.hold(key, ON_LOOP_TIMEOUT):
            try:
                yield
            except TimeoutError:
                raise
            except (OSError, StoreUnavailable) as err:
                # The folder of API tasks gone, a full or failing disk, with replicas the
                # database of the API's tasks refusing or not answering in time (its calls are
                # bounded: ``store.api_tasks``): nothing the caller did, and a retry works once
                # it is back (a 503, not a 500). Said as the API tasks' store, not the run
                # store's outage (/readyz says whether that one is fine). A pass reads the key
                # again, so that the API source's error (GET /api/v1/sources, which the answer
                # points to) says now what it would say only after the next resync; once it
                # says this very error, not again: while the folder is gone every write came
                # here, and each ran a pass (1 714 writes in 5 s, 1 714 passes).
                if not self._api.knows(err):
                    with contextlib.suppress(TimeoutError):
                        self._apply(key, TELLING_TIMEOUT)
                raise ApiTasksUnavailable(str(err)) from err

    @contextlib.contextmanager
    def _reserved(
        self, key: str, text: str, previous: str | UnreadableText | None
    ) -> Iterator[None]:
        """NoRoom if storing ``text`` over ``previous`` takes the API over its bounds; else
        the room is held for ``text`` until the block is over (the write stored and read, or
        failed). Counted from what the API source read, and the writes of this process in
        flight; those of other replicas not yet polled may take it a few tasks over."""
        size = len(text.encode())
        old = None
        if previous is not None:  # a text the store did not read is counted as nothing
            old = 0 if isinstance(previous, UnreadableText) else len(previous.encode())
        with self._room:
            tasks, total = self._in_flight_usage(*self._api.usage())
            check_room(key, tasks=tasks, total=total, old=old, new=size)
            self._in_flight[key] = (size, text_version(text))
        try:
            yield
        finally:
            with self._room:
                del self._in_flight[key]

    def _in_flight_usage(self, tasks: int, total: int) -> tuple[int, int]:
        """``tasks`` and ``total`` as the API source read them, with the other keys' writes in
        flight counted as stored where that takes more room (one may yet fail): a key the
        source has not read is one more task, a text larger than the one read is more bytes.
        (One write of a key at a time: the key's lock is held around this.)"""
        for key, (size, version) in self._in_flight.items():
            read = self._api.stored(key)
            if read is None:
                tasks, total = tasks + 1, total + size
            elif read.version != version:
                total += max(size - read.size, 0)
        return tasks, total

    def _write(self, key: str, text: str, previous: str | UnreadableText | None) -> TaskView:
        """Under the key's lock: store ``text`` in place of ``previous`` (None: create), wait
        for it to be in force, and return it. If its pass fails, the write stays stored and
        this raises NotInForce. If the task is not the API's after the pass, the write is
        undone before anything is raised."""
        expect = MISSING if previous is None else text_version(previous)
        written = self._api.store.write(key, text, expect=expect)
        result = self._apply(key)
        if not result.ok:
            # Undoing it would lose the user's write; the loop retries the pass instead.
            raise NotInForce(key, _failed(result))
        unread = self._api.status().last_error
        if unread is not None:
            # The pass worked, the API's tasks did not read (kept as they were): the write is
            # stored but not in force, and it is no other source's either (nothing to undo).
            raise NotInForce(key, f"the pass that applies it could not read it ({unread})")
        view = self._view(key)
        taken = previous is None and _declared_elsewhere(key, result)
        read = self._api.stored(key)
        # A text that does not read back keeps the previous definition in force (as a broken
        # file does): the API's own write of it is undone all the same (the undo expects the
        # version written: one another replica wrote since stands).
        broken = read is not None and read.error is not None
        if view is None or view.source.kind != SourceKind.API or taken or broken:
            self._undo(key, written, previous)
            # Another source declared the key between the owner check and the pass.
            self._check_owner(key)
            raise RuntimeError(f"{key} is not in force after it was written")
        return view

    def _check_removed(self, key: str, result: PassResult) -> None:
        """NotInForce unless the pass after removing ``key`` from the store took the API's
        task out of the schedule (or another replica has stored it again since)."""
        if not result.ok:
            raise NotInForce(key, _failed(result), removed=True)

        def kept() -> bool:
            if self._api.stored(key) is not None:
                return False  # written again since (another replica): that write stands
            found = self._scheduler.owned().get(key) or self._reconciler.desired.tasks.get(key)
            return found is not None and found.location.source == SourceKind.API

        if self._on_loop(kept):
            why = "the pass kept it scheduled"
            if key in result.plan.held_removals:
                why = "the pass held its removal back (every source read empty)"
            raise NotInForce(key, why, removed=True)

    def _undo(self, key: str, written: str, previous: str | UnreadableText | None) -> None:
        """Put back what ``key`` stored before the write of version ``written``: the previous
        text, or nothing (also in place of a previous text the store could not read, which was
        no task either)."""
        try:
            if isinstance(previous, str):
                self._api.store.write(key, previous, expect=written)
            else:
                self._api.store.remove(key, expect=written)
        except (KeyError, VersionMismatch):
            return  # another replica has written the key since: its write stands
        self._apply(key)

    def _check_owner(self, key: str) -> None:
        def owner() -> Definition | None:
            return self._reconciler.desired.tasks.get(key) or self._scheduler.owned().get(key)

        current = self._on_loop(owner)
        if current is not None and current.location.source != SourceKind.API:
            location = current.location
            raise OwnedElsewhere(key, SourceRef(location.source, str(location), location.revision))

    def _apply(self, key: str, timeout: float | None = None) -> PassResult:
        """Run a pass for the API source's ``key`` now, wait for it (``timeout``, else
        ON_LOOP_TIMEOUT; then TimeoutError), and say how it went."""
        return self._pass({SourceKind.API: {key}}, timeout)

    def _read_others(self, key: str) -> None:
        """Before a create: a pass re-reading what the other sources may declare of ``key``
        and have not had a pass for (a file written a moment ago, its watcher's event still
        on its way): a folder is rescanned (only its changed files are read), git reads a
        revision synced and not yet read, Kubernetes its cache of the key. Its failure is the
        next pass's to retry; the owner check goes on with what is known."""
        hints: dict[str, set[str]] = {}
        for source in self._reconciler.sources:
            if source.kind == SourceKind.API:
                continue
            named = hints.setdefault(source.kind, set())
            if isinstance(source, DirectorySource):  # a hint naming a root rescans it
                named.update(str(root.absolute()) for root in source.roots)
            else:
                named.add(key)
        if hints:
            self._pass(hints)

    def _pass(
        self, hints: Mapping[str, Collection[str]], timeout: float | None = None
    ) -> PassResult:
        future = asyncio.run_coroutine_threadsafe(self._reconcile(hints), self._loop)
        return future.result(ON_LOOP_TIMEOUT if timeout is None else timeout)


def _declared_elsewhere(key: str, result: PassResult) -> bool:
    """Whether the pass found ``key`` declared by another source than the API too (the API's
    definition won the conflict only because its location sorts first)."""
    return any(
        conflict.key == key and any(lost.source != SourceKind.API for lost in conflict.losers)
        for conflict in result.desired.conflicts
    )


def _failed(result: PassResult) -> str:
    """Why ``result``'s pass failed, in one line."""
    error = result.error
    said = excerpt(f"{type(error).__name__}: {error}", PASS_ERROR)
    return f"the pass that applies it failed ({said})"
