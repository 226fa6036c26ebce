"""Run records: what happened to one slot of one task.

A run's identity is derived from ``(task key, scheduled time)`` so that the run store can refuse
a second run of the same slot; this is what keeps a slot from running twice across restarts and
replicas (Kubernetes CronJob does the same with deterministic Job names). Retries are further
attempts of the same run: same id, ``attempt`` 1..n.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Collection, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Final


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timedOut"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        return self is not RunStatus.RUNNING


class Trigger(enum.StrEnum):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    RETRY = "retry"
    CATCHUP = "catchup"


# The reason of an attempt whose process died during it, as the instance or replica that found
# it dead records it (``RunStore.mark_interrupted``, ``store.base.INTERRUPTED_REASON``): no
# dispatcher wrote that end, so none of its listeners heard of it.
PROCESS_DIED: Final = "ProcessDied"
# The reason of a job attempt whose Job went before its end was seen: its outcome is unknown,
# so no retry follows it (the work may have run to its end: a retry could run it twice).
JOB_DELETED: Final = "JobDeleted"
# The reason of a slot or manual run this replica may not start now (its membership not
# renewed in time: the fence; or crontask stopping): nothing is recorded, the record only says
# so to its caller (a manual run's is answered 503), and a scheduled slot is caught up later.
NOT_STARTED: Final = "NotStarted"
# Ends the message of a run marked ``interrupted`` by a crontask that told nobody of it (one that
# does not declare its task, has no notifier, or is a replica; a start that finds another
# crontask's run, or a restart whose first pass no longer declares the task), so that no
# notification was sent of it: a crontask that tells may take it over (``controller.heartbeat``,
# ``sinks.notify``). It says what is true of them all, not which. The text is a marker records
# are found by (``endswith``: ``UNTOLD_NOTES``, the store's queries): a record keeps the one it
# was written with, so the note crontasks before wrote (``UNTOLD_BEFORE``) is read as this one.
UNTOLD: Final = " (no notification was sent: the crontask that found it does not tell of it)"
UNTOLD_BEFORE: Final = (
    " (found by a crontask that does not declare its task: no notification was sent)"
)
UNTOLD_NOTES: Final = (UNTOLD, UNTOLD_BEFORE)


def died(record: RunRecord) -> bool:
    """Whether ``record``'s attempt was marked ``interrupted`` because its process died: an end
    no dispatcher wrote."""
    return record.status is RunStatus.INTERRUPTED and record.reason == PROCESS_DIED


def untold(record: RunRecord) -> bool:
    """Whether ``record`` died and the crontask that found it dead told nobody (``UNTOLD``):
    the memory store's twin of the SQL store's conditions, and the notifier's test."""
    return died(record) and (record.message or "").endswith(UNTOLD_NOTES)


def without_untold(message: str) -> str:
    """``message`` without the note ``UNTOLD`` (either of ``UNTOLD_NOTES``) that ends it."""
    for note in UNTOLD_NOTES:
        if message.endswith(note):
            return message.removesuffix(note)
    return message


# A namespace or a name (Kubernetes' DNS-1123 label, at most 63 characters): a task key is
# ``namespace/name``. Here rather than in ``model``, which loads pydantic, so that the command
# line can check a key without it.
DNS1123_LABEL: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

# An RFC 3339 date-time with an offset, fractions to the microsecond (the command line's
# ``--from``; the API's ``since`` and ``until`` take more, below); here for the same reason.
# fromisoformat reads more (``2026-W01-1``, ``+0100``) and reads ``+00:99`` as +01:39, an
# instant nobody meant.
RFC3339_PATTERN: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
# The API's ``since`` and ``until``: fractions to the nanosecond as well (RFC 3339 sets no
# limit; .NET's "o" writes 7 digits, Go's RFC3339Nano 9), rounded up to the microsecond where
# they are read (``api.params.parse_instant``). ``--from`` keeps the microsecond above.
RFC3339_QUERY_PATTERN: Final = RFC3339_PATTERN.replace(r"{1,6}", r"{1,9}", 1)


def split_key(key: str) -> tuple[str, str]:
    """``"ops/nightly-backup"`` -> ``("ops", "nightly-backup")``."""
    namespace, sep, name = key.partition("/")
    if not sep or not namespace or not name:
        raise ValueError(f"task key must be NAMESPACE/NAME, got {key!r}")
    return namespace, name


def run_id(key: str, scheduled_at: datetime) -> str:
    """The deterministic id of the run of ``key`` for the slot at ``scheduled_at``.

    Namespaces and names are DNS-1123 labels (no dots), so ``namespace.name.timestamp`` cannot
    collide between tasks. Sub-second precision is kept only when present (manual triggers:
    :func:`manual_slot`).
    """
    if scheduled_at.tzinfo is None:
        raise ValueError("scheduled_at must be timezone-aware")
    namespace, name = split_key(key)
    # In UTC before the cache sees it: two datetimes of one zone compare equal by wall time,
    # ignoring ``fold``, so 02:30 before and after clocks go back would be one cache key and
    # the second would get the first one's id.
    return f"{namespace}.{name}.{_stamp(scheduled_at.astimezone(UTC))}Z"


def manual_slot(now: datetime) -> datetime:
    """The slot of a manual run asked for at ``now``: that moment, but never a whole second.

    Scheduled slots are whole seconds, and a run's id (and its Job's name) shows a fraction
    only when there is one; a clock reading of exactly ``.000000`` would otherwise take the id
    of the scheduled slot of that second. One microsecond later keeps the id's shape, so ids
    stored before still read the same.
    """
    return now if now.microsecond else now + timedelta(microseconds=1)


# Manual runs going at once on a crontask: a loop of requests on an Allow task must not start
# processes until crontask's file descriptors run out (every other task's starts and the
# store's files would then fail). Past these a manual run is skipped, and recorded so.
MANUAL_MAX: Final = 10  # of one task
MANUAL_MAX_TOTAL: Final = 100  # of all tasks


def too_many_manual(
    going: Iterable[RunRecord], key: str, replaced: Collection[str] = ()
) -> str | None:
    """Why another manual run of ``key`` may not start beside the runs ``going``, if it may
    not. A manual slot is never a whole second (:func:`manual_slot`), whatever its attempt's
    trigger: a retry of a manual run still counts. ``replaced``: the ids of those stopped for a
    newer run of their task (``Replace``): they count toward all tasks' bound (each holds its
    place until it has ended), not toward their task's: under Replace one of its runs goes at a
    time, however many it replaced (each waits for those it replaced to end, and those waiting
    to begin never do)."""
    manual = [r for r in going if r.scheduled_at.microsecond]
    mine = sum(r.task == key and r.id not in replaced for r in manual)
    if mine < MANUAL_MAX and len(manual) < MANUAL_MAX_TOTAL:
        return None
    why = f"{mine} of this task" if mine >= MANUAL_MAX else f"{len(manual)} in all"
    return (
        f"manual runs going: {why} (at most {MANUAL_MAX} a task, {MANUAL_MAX_TOTAL} in all); "
        "ask again when one has ended"
    )


# Runs in progress at once on a crontask, whatever their trigger (scheduled, retries, catch-ups
# and manual runs together). Each command or HTTP run holds file descriptors of crontask's own,
# and when they run out every other task's starts fail, and the API's connections and the
# store's files with them: an ``Allow`` task whose runs outlast its period would start one more
# at each slot until then. Past these bounds a slot is skipped, and recorded so. A ``job``
# task's runs hold none (the cluster's quota bounds its Jobs, as a CronJob's): not bounded here.
RUNS_MAX: Final = 100  # of one task
FILES_PER_RUN: Final = 2  # a command's output pipe and its pidfd; an HTTP request's socket
# Left to everything else: the store, the sources, the log, the starts under way (each holds
# its pipe's other end a moment); an idle crontask holds about 20.
FILES_KEPT: Final = 64


def runs_at_once(open_files: int) -> int:
    """How many runs that hold file descriptors may be in progress at once under a limit of
    ``open_files`` (this process's ``ulimit -n``): what is left after the quarter the API's
    connections may take (``cli.connections``) and ``FILES_KEPT``, ``FILES_PER_RUN`` each;
    at least one."""
    return max(1, (open_files - open_files // 4 - FILES_KEPT) // FILES_PER_RUN)


def too_many_runs(mine: int, going: int, open_files: int | None) -> str | None:
    """Why another run of a task may not start beside its ``mine`` runs in progress and the
    ``going`` runs in progress of all tasks that hold file descriptors, under a limit of
    ``open_files`` (None: none), if it may not. One task takes at most ``RUNS_MAX``, and never
    more than half of what the limit leaves room for: under a low one the others still start."""
    most = None if open_files is None else runs_at_once(open_files)
    per_task = RUNS_MAX if most is None else min(RUNS_MAX, max(1, most // 2))
    if mine < per_task and (most is None or going < most):
        return None
    if mine < per_task:
        why = f"{going} in all (at most {most} under crontask's limit of {open_files} open files)"
    elif per_task == RUNS_MAX:
        why = f"{mine} of this task (at most {RUNS_MAX} a task)"
    else:
        why = (
            f"{mine} of this task (at most {per_task} a task: half of the {most} that "
            f"crontask's limit of {open_files} open files leaves room for)"
        )
    return f"runs in progress: {why}; skipped until one has ended"


@functools.lru_cache(maxsize=64)
def truncation_marker(dropped: int | None) -> str:
    """How a run's kept text says that ``dropped`` bytes of it were left out (None: how many
    is not known): its output, a response's body, its stored message."""
    return f"[... {'more' if dropped is None else dropped} bytes truncated ...]"


def _stamp(at: datetime) -> str:
    # Memoised: the runs due in the same second share their slot, and strftime is the costly
    # part of an id. ``at`` is in UTC (see run_id): one instant, one key.
    stamp = at.strftime("%Y%m%dT%H%M%S")
    if at.microsecond:
        stamp += f".{at.microsecond:06d}"
    return stamp


@dataclasses.dataclass(frozen=True, slots=True)
class LastOutcomes:
    """When a task's newest successful attempt ended, and its newest failed, timed-out or
    interrupted one, and how long the attempt that ended last ran, of those that started and
    whose end is known: not one ``interrupted`` because its process died (``ProcessDied``),
    whose recorded end is when it was found dead (None: there is none in the history)."""

    success: datetime | None = None
    failure: datetime | None = None
    duration: float | None = None  # seconds


@dataclasses.dataclass(frozen=True, slots=True)
class ContainerResult:
    """How one container of a Job's pod ended (or why it has not started)."""

    name: str
    exit_code: int | None = None
    reason: str | None = None  # Completed, Error, OOMKilled, ImagePullBackOff, ...


@dataclasses.dataclass(frozen=True, slots=True)
class JobDetails:
    """The Kubernetes Job behind one attempt of a ``job`` task's run.

    Known from the start (the name is derived from the task, the slot and the attempt), then
    completed as the Job is created (``uid``) and ends (its pod, node, containers, times).
    ``log_error`` says why the log tail (the record's ``output``) could not be read.
    """

    namespace: str
    name: str
    uid: str | None = None
    pod: str | None = None
    node: str | None = None
    containers: tuple[ContainerResult, ...] = ()
    started_at: datetime | None = None  # the Job's status.startTime
    completed_at: datetime | None = None  # status.completionTime (success only)
    log_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"namespace": self.namespace, "name": self.name}
        for field in ("uid", "pod", "node", "log_error"):
            if (value := getattr(self, field)) is not None:
                out[field] = value
        for field in ("started_at", "completed_at"):
            if (at := getattr(self, field)) is not None:
                out[field] = at.astimezone(UTC).isoformat()
        if self.containers:
            out["containers"] = [
                {k: v for k, v in dataclasses.asdict(c).items() if v is not None}
                for c in self.containers
            ]
        return out

    @classmethod
    def from_json(cls, data: Any) -> JobDetails | None:
        """The details written by :meth:`to_json`; None for anything else (never raises: a
        stored value this version does not understand is no reason to lose the record)."""
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            return None
        try:
            return cls(
                namespace=str(data.get("namespace") or ""),
                name=data["name"],
                uid=_text(data.get("uid")),
                pod=_text(data.get("pod")),
                node=_text(data.get("node")),
                containers=tuple(
                    ContainerResult(
                        str(c["name"]),
                        c.get("exit_code") if isinstance(c.get("exit_code"), int) else None,
                        _text(c.get("reason")),
                    )
                    for c in data.get("containers") or ()
                    if isinstance(c, dict) and "name" in c
                ),
                started_at=_time(data.get("started_at")),
                completed_at=_time(data.get("completed_at")),
                log_error=_text(data.get("log_error")),
            )
        except (TypeError, ValueError):
            return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    at = datetime.fromisoformat(value)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class RunRecord:
    """One attempt of one run. ``(id, attempt)`` is unique in every store.

    All datetimes are timezone-aware UTC. ``output`` is the tail of the combined stdout/stderr
    (the response body for HTTP actions, the main container's log for Jobs), already bounded
    by the runner.
    """

    id: str
    task: str  # "namespace/name"
    scheduled_at: datetime
    trigger: Trigger
    status: RunStatus
    attempt: int = 1
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    reason: str | None = None  # CamelCase, e.g. "ConcurrencyForbid", "DeadlineExceeded"
    message: str | None = None
    output: str = ""
    owner: str | None = None  # the instance that claimed the run (controller/instance.py)
    job: JobDetails | None = None  # the Kubernetes Job of a job task's attempt

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return int((self.finished_at - self.started_at).total_seconds() * 1000)

    def begun_by(self, now: datetime) -> RunRecord:
        """This record, its start no earlier than ``now`` (a claim written after a wait)."""
        if self.started_at is None or self.started_at >= now:
            return self
        return dataclasses.replace(self, started_at=now)

    def finish(
        self,
        status: RunStatus,
        *,
        finished_at: datetime,
        exit_code: int | None = None,
        reason: str | None = None,
        message: str | None = None,
        output: str = "",
        job: JobDetails | None = None,
    ) -> RunRecord:
        # Spelled out rather than dataclasses.replace(), which costs as much again per run.
        return RunRecord(
            id=self.id,
            task=self.task,
            scheduled_at=self.scheduled_at,
            trigger=self.trigger,
            status=status,
            attempt=self.attempt,
            started_at=self.started_at,
            finished_at=finished_at,
            exit_code=exit_code,
            reason=reason,
            message=message,
            output=output,
            owner=self.owner,
            job=job or self.job,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class RetriedAttempt(RunRecord):
    """A failed or timed-out attempt that the dispatcher tries again: its run has not ended.

    What the dispatcher's listeners are handed instead of the plain record (the run store
    holds that one, and nothing of the decision). The decision is the dispatcher's alone: it
    is made with the definition the run began with, which the one in force may no longer be
    (a retry limit raised or lowered while the attempt ran). Its fields are a
    :class:`RunRecord`'s: a record of either type is stored alike. It never equals the plain
    record of the same fields (records compare by type too): compare fields, not records.
    """

    @classmethod
    def of(cls, record: RunRecord) -> RetriedAttempt:
        return cls(**{f.name: getattr(record, f.name) for f in dataclasses.fields(record)})

    def following(self) -> RunRecord:
        """The next attempt's record before it starts (a plain record: whether that one is
        retried is decided when it ends). Its Job, output and end are its own."""
        return RunRecord(
            id=self.id,
            task=self.task,
            scheduled_at=self.scheduled_at,
            trigger=Trigger.RETRY,
            status=RunStatus.RUNNING,
            attempt=self.attempt + 1,
            started_at=self.started_at,
            owner=self.owner,
        )
