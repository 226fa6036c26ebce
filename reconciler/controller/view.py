"""What the running reconciler shows to its interfaces (REST API, CLI clients, status sinks).

``RuntimeView`` is the contract between the controller and the API layer: the API reads and
acts only through it, so it can be tested against any implementation, and the controller never
imports the web framework.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from reconciler.controller.active import Start

# Part of the contract: the errors of API-task writes (re-exported for the API layer).
from reconciler.core.api_tasks import AlreadyExists as AlreadyExists
from reconciler.core.api_tasks import VersionMismatch as VersionMismatch
from reconciler.core.desired import Definition, SourceKind
from reconciler.core.model import ConcurrencyPolicy, CronTask
from reconciler.core.runs import RunRecord
from reconciler.store.base import RunStore


@dataclasses.dataclass(frozen=True, slots=True)
class SourceRef:
    kind: str  # a SourceKind: file, git, kubernetes or api
    location: str  # "path:line:col", "namespace/name" of a CR, ...
    revision: str | None = None  # a commit SHA for git

    @classmethod
    def of(cls, definition: Definition) -> SourceRef:
        """Where ``definition`` is declared, as its view shows it (an API task: its URL)."""
        location = definition.location
        if location.source == SourceKind.API:
            return cls(SourceKind.API, f"/api/v1/tasks/{definition.key}")
        return cls(location.source, str(location), location.revision)


@dataclasses.dataclass(frozen=True, slots=True)
class TaskView:
    key: str  # "namespace/name"
    resource: Mapping[str, Any]  # the CronTask document in force (its last good definition)
    source: SourceRef
    error: str | None  # the current definition error or conflict; the task runs its last good one
    suspended: bool
    running: tuple[str, ...]  # ids of running runs
    next_runs: tuple[datetime, ...]  # the next fire times (up to 5), in the task's zone
    last_run: RunRecord | None
    version: str | None = None  # an API-owned task's resource version (its ETag); else None
    owner: str | None = None  # with replicas: the instance that schedules it

    @property
    def state(self) -> str:
        """``Suspended``, ``Error`` (a definition problem; the last good one runs) or ``Ready``."""
        return task_state(self.suspended, self.error)


def task_state(suspended: bool, error: str | None) -> str:
    if suspended:
        return "Suspended"
    return "Error" if error else "Ready"


@dataclasses.dataclass(frozen=True, slots=True)
class TaskQuery:
    """Which tasks ``RuntimeView.tasks`` returns: those matching every filter given, with a key
    after ``after``, sorted by key, at most ``limit`` of them (``None``: all)."""

    namespace: str | None = None
    source: str | None = None  # a source kind: file, git, kubernetes, api
    state: str | None = None  # Ready, Error, Suspended
    after: str | None = None
    limit: int | None = None
    # In the key or the source's location (``TaskView.source.location``), any case: the
    # status page's search, matched before a view is made (``found``).
    text: str = ""

    def matches(self, key: str, source: str, state: str, searched: str) -> bool:
        """Whether a task passes every filter; ``searched`` is its ``search_text`` (not read
        without ``text``): a part of the query no list can leave out."""
        return (
            (self.after is None or key > self.after)
            and (self.namespace is None or key.partition("/")[0] == self.namespace)
            and (self.source is None or source == self.source)
            and (self.state is None or state == self.state)
            and bool(self.found((searched,)))
        )

    def found(self, texts: Sequence[str], start: int = 0) -> Sequence[int]:
        """The positions from ``start`` of the ``texts`` (``search_text`` each) that ``text``
        is in, any case; all without ``text``. One test for many (100 000 in a few ms)."""
        needle = self.text.lower()
        if not needle:
            return range(start, len(texts))
        if "\0" in needle:  # a key and its location are apart: no text spans the two
            return []
        return [i for i in range(start, len(texts)) if needle in texts[i]]


def search_text(key: str, location: str) -> str:
    """What ``TaskQuery.text`` is looked for in: ``key`` and ``location`` (as ``SourceRef``
    says it), lower-cased, apart."""
    return f"{key}\0{location}".lower()


@dataclasses.dataclass(frozen=True, slots=True)
class SourceStatus:
    """One source of definitions and how its last sync went."""

    kind: str  # a SourceKind: file, git, kubernetes or api
    location: str  # the paths, the repository URL (credentials stripped), ...
    tasks: int  # definitions in force from it
    errors: int  # definition errors and conflicts located in it
    revision: str | None = None  # git: the commit in force
    attempted_revision: str | None = None  # git: the newest commit tried
    last_sync: datetime | None = None  # the end of the last sync that left the revision in force
    last_attempt: datetime | None = None
    last_error: str | None = None  # why the last sync failed (secrets redacted)
    sync_failures: int = 0  # failed syncs since the start (a Job watch's: in a row)
    failing_since: datetime | None = None  # a Job watch's: the first of those failures
    # Its definition errors and conflicts, each "file:line:col: message" (the first 100).
    problems: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class FieldError:
    location: tuple[str | int, ...]  # e.g. ("spec", "schedule")
    message: str


class InvalidDefinition(ValueError):
    """A resource sent to the API does not validate; ``errors`` name each failing field."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(
            "; ".join(f"{'.'.join(map(str, e.location))}: {e.message}" for e in errors)
        )
        self.errors = errors


class OwnedElsewhere(Exception):
    """The task is defined by another source (a file, git, a custom resource): change it there.

    ``source`` says where, so the API can tell the user.
    """

    def __init__(self, key: str, source: SourceRef) -> None:
        super().__init__(
            f"{key} is defined by {source.kind} source {source.location}"
            + (f" at revision {source.revision}" if source.revision else "")
            + "; change it there"
        )
        self.key = key
        self.source = source


@dataclasses.dataclass(frozen=True, slots=True)
class MemberStatus:
    id: str  # instance id: host:pid:start:boot:pidns:token
    address: str | None  # where its API listens
    since: datetime  # when it joined
    renewed: datetime  # its last renewal
    owned: int  # tasks it schedules
    digest: str | None  # of the desired set it read
    revision: str | None  # the git revision in force there
    draining: bool  # stopping: its tasks have moved, its runs are finishing
    me: bool  # the replica answering
    version: str | None = None  # the crontask version it runs; None: unknown (it did not say)


@dataclasses.dataclass(frozen=True, slots=True)
class Members:
    items: tuple[MemberStatus, ...]
    # When the live members' digests differ: since when, and a sample of the tasks that differ
    # with each member's spec hash of them (None: that member does not declare the task).
    disagreeing_since: datetime | None = None
    differing: tuple[tuple[str, Mapping[str, str | None]], ...] = ()
    # How many are live, read or not: a renewal reads at most so many (membership.base.Cap).
    live: int = 0
    # When the list was read (the last renewal that worked; None: none yet), and whether this
    # replica is fenced (not renewed within its renew deadline: it starts no runs, and the list
    # is as of then, not now).
    listed_at: datetime | None = None
    fenced: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Triggered:
    """A manual run as ``trigger`` fired it: its record, and what the definition the dispatcher
    decided it by says of it, taken as it fired. The answer words a run still waiting by its
    action, and tells by its policy what a store that does not answer means (under Allow the
    run goes on); read from the desired state afterwards, a pass landing between the fire and
    that read (the task changed or removed; the run goes on as decided) told the new state."""

    record: RunRecord
    job: bool  # a ``job`` task's run (else a ``command``'s)
    policy: ConcurrencyPolicy
    # What says when a Replace run begins (``Dispatcher.start_of``); None: it was not launched
    # (skipped as it fired), is not Replace, or the view does not follow it (then it counts
    # as started from its decision).
    start: Start | None = None

    @classmethod
    def of(cls, record: RunRecord, definition: Definition, start: Start | None = None) -> Triggered:
        spec = definition.task.spec
        return cls(record, spec.job is not None, spec.concurrency_policy, start)


IfMatch = frozenset[str]
"""The versions a conditional write accepts; ``"*"`` among them: any existing version."""


class RuntimeView(Protocol):
    """The running reconciler, as its interfaces see it.

    Reads are snapshots and cheap; ``tasks`` returns what a :class:`TaskQuery` selects, sorted
    by key. ``trigger`` starts a manual run now (or records why it was skipped, e.g.
    ``ConcurrencyForbid``) and returns that record with what its definition said as it fired
    (:class:`Triggered`); KeyError for an unknown task.

    API-owned tasks are persisted and reconciled like any other source; writes of one key are
    serialised, and each returns once the change is in force. ``create_api_task`` raises
    AlreadyExists if the API has the key. ``put_api_task`` creates or replaces and returns
    ``(view, created)``. ``delete_api_task`` raises KeyError for a key the API does not have.
    All three raise OwnedElsewhere for a key another source defines; the first two
    InvalidDefinition, and TaskTooLarge for a task over what the API source reads; the last
    two, given ``if_match``, VersionMismatch unless the current version is one of it. A view
    of an API-owned task carries its ``version``.

    ``readiness`` names each check (``sources``, ``scheduler``, ``store``) and whether it
    passes. ``sources`` lists every source with its revision and sync state. ``sync_now(kind)``
    asks a pulling source (git) to fetch at once; False if there is no such source.

    ``in_force`` is every declared task's definition in force, by key, whichever replica
    schedules it (a flagged task's last good one): a snapshot that is never modified, for a
    plan to compare with. ``runs_jobs`` says whether this crontask can create Kubernetes Jobs
    (without, a ``job`` task is a definition error of its key).
    """

    @property
    def store(self) -> RunStore: ...

    def tasks(self, query: TaskQuery | None = None) -> list[TaskView]: ...

    def task(self, key: str) -> TaskView | None: ...

    def trigger(self, key: str) -> Triggered: ...

    def create_api_task(self, task: CronTask) -> TaskView: ...

    def put_api_task(
        self, task: CronTask, *, if_match: IfMatch | None = None
    ) -> tuple[TaskView, bool]: ...

    def delete_api_task(self, key: str, *, if_match: IfMatch | None = None) -> None: ...

    def readiness(self) -> dict[str, bool]: ...

    def sources(self) -> list[SourceStatus]: ...

    def job_watches(self) -> list[SourceStatus]:
        """The Job watches in use (kind ``jobs``, ``controller.jobs.JobSupport``), each as
        a source; none without the job action."""
        ...

    def members(self) -> Members | None:
        """The replicas (``--ha``) as this one sees them; None when it runs alone."""
        ...

    def sync_now(self, kind: str) -> bool: ...

    def in_force(self) -> Mapping[str, Definition]: ...

    def runs_jobs(self) -> bool: ...

    def replacing(self, run_id: str) -> bool:
        """Whether a run decided here waits for the runs it replaces to stop
        (``concurrencyPolicy: Replace``: a command within its kill grace, a Job until its
        delete goes through) before it starts. Such a run is recorded only once that wait
        ends, or, with replicas, is recorded ``running`` (its claim) though not started: the
        store cannot tell it, the dispatcher can. A read from any thread, without the loop."""
        ...
