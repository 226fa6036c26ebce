"""What a CronTask custom resource's ``.status`` should say: a pure derivation.

Contract:

- :func:`derive_status` takes the status currently stored on the object, what crontask knows
  about the task (:class:`StatusInputs`) and ``now``, and returns the complete status crontask
  wants stored. It never reads a clock or does I/O; the same inputs give the same output.
- Conditions have the ``metav1.Condition`` shape (type, status, observedGeneration,
  lastTransitionTime, reason, message; ``message`` always present). ``lastTransitionTime`` moves
  only when a condition's ``status`` changes; a new reason or message keeps it. crontask owns
  ``Ready`` and ``Stalled`` only: the conditions other controllers set are kept as they are
  (see :func:`foreign_conditions`), as the patch replaces the list whole.
- Run times only move forward: the stored ``lastSuccessfulTime`` (say, from before a restart)
  is kept unless crontask has seen a later one, so the object itself is the memory across
  restarts. A stored time that UTC cannot hold (``9999-12-31T23:00:00-05:00``, which the API
  server accepts), or more than :data:`FUTURE_MARGIN` after ``now``, is taken for absent, so
  that what crontask saw replaces it: kept, the first failed every status write of the object,
  the second outlived every real run.
- :func:`merge_patch` turns (stored, wanted) into an RFC 7386 merge patch, empty when nothing
  differs: a writer that sends nothing for an empty patch cannot loop on its own watch events.
- Timestamps are RFC 3339 UTC with a ``Z`` and whole seconds (``metav1.Time``); :func:`rfc3339`
  never raises.

The Events a run is worth, which tell of one run rather than sum up all of them, are
``run_events``'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler.core.desired import Definition, DesiredState, ErrorKind, SourceKind
from reconciler.core.fields import RUN_NOW_ANNOTATION as RUN_NOW_ANNOTATION
from reconciler.core.runs import RetriedAttempt, RunRecord, RunStatus, Trigger

# A run-now value is a marker (``$(date +%s)``, a counter): one longer than this is no
# request but a mistake or an abuse, refused where it is read (``run_now_refused``), so that it
# is never copied into ``status.lastRunNow`` nor logged whole.
MAX_RUN_NOW = 1024

READY = "Ready"
STALLED = "Stalled"
OWN_CONDITIONS = frozenset({READY, STALLED})
# Conditions of other types kept, at most: the first this many of the stored list. Anyone who
# may write the status may add conditions, thousands of them; kept all, they would grow every
# status write crontask makes (and the object, towards etcd's 1.5 MiB limit) on their behalf.
FOREIGN_CONDITIONS_MAX = 16

# Reasons (CamelCase, as metav1.Condition requires).
SCHEDULED = "Scheduled"
INVALID_SPEC = "InvalidSpec"
SUSPENDED = "Suspended"
CONFLICT = "Conflict"
PENDING = "Pending"
TASK_LIMIT = "TaskLimit"

# A stored run time ahead of ``now`` by more than this is no run's: the clocks of the replicas
# and of the API server (a Job's completion time) disagree by seconds, not by a day.
FUTURE_MARGIN = timedelta(days=1)
# The ends of what a ``datetime`` in UTC can hold (``rfc3339`` writes a time past them as these).
_UTC_MAX = datetime.max.replace(microsecond=0, tzinfo=UTC)
_UTC_MIN = datetime.min.replace(tzinfo=UTC)

# A CronTask's spec errors its conditions and ``InvalidSpec`` Event give, at most (the log has
# each), and the characters those after the first may take: 1 KiB, an Event's note in
# ``events.k8s.io``, which a spec error repeated by the hundred would otherwise outgrow.
INVALID_SHOWN = 5
INVALID_MORE_CHARS = 1024

# ``status.active`` lists at most this many runs, the newest: a task that allows overlapping
# runs may have thousands going (every second, hours each), and a status over etcd's 1.5 MiB
# request limit would fail every write of the object's status. ``activeCount`` counts them all.
ACTIVE_MAX = 100

FAILURES = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.INTERRUPTED})
# The reason of a run that crontask's own shutdown interrupted.
SHUTDOWN_REASON = "Shutdown"


def is_failure(record: RunRecord) -> bool:
    """Whether ``record`` tells of the task failing: failed, timed out, or interrupted, but
    not interrupted by crontask's own shutdown. A restart is not the task's failure: counted
    as one, every deploy while a task ran would mark it failing and fire its alert until its
    next success (a nightly task's, for a day)."""
    if record.status is RunStatus.INTERRUPTED:
        return record.reason != SHUTDOWN_REASON
    return record.status in FAILURES


def _abandoned(record: RunRecord) -> bool:
    """Whether ``record``, the attempt after a retried one, never ended its run: skipped (the
    retry abandoned) or interrupted by crontask's own shutdown."""
    if record.status is RunStatus.INTERRUPTED:
        return record.reason == SHUTDOWN_REASON
    return record.status is RunStatus.SKIPPED


def is_scheduled(record: RunRecord) -> bool:
    """Whether ``record`` is of a slot of the task's schedule (``lastScheduleTime`` is the
    latest of these, as a CronJob's: ``kubectl create job --from=cronjob/...`` never moves
    it). Not a manual run, nor a retry of one: a retry's record says ``retry``, but a manual
    run's slot is never a whole second (``runs.manual_slot``), and a scheduled one always is."""
    if record.trigger is Trigger.MANUAL:
        return False
    return record.trigger is not Trigger.RETRY or record.scheduled_at.microsecond == 0


def rfc3339(at: datetime) -> str:
    """``at`` as a ``metav1.Time``: UTC, whole seconds, a four-digit year (``strftime``'s
    ``%Y`` writes year 1 as ``1``, which the API server refuses). Never raises: a time that UTC
    cannot hold (``datetime.max`` with a negative offset) is written as the nearest it can."""
    try:
        utc = at.astimezone(UTC)
    except OverflowError:
        utc = _UTC_MAX if at.year > 1 else _UTC_MIN
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}Z"


def parse_time(text: Any) -> datetime | None:
    """An RFC 3339 time in UTC (no offset read as UTC), or None: for no time, and for one that
    UTC cannot hold (``9999-12-31T23:00:00-05:00`` is past year 9999 there), which the API
    server accepts but Python cannot convert, compare safely or write back."""
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class ObjectRef:
    """A CronTask object as last seen from the API server (what status and Events need)."""

    namespace: str
    name: str
    uid: str
    resource_version: str
    generation: int
    run_now: str | None = None  # the crontask.dev/run-now annotation
    status: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    api_version: str = "crontask.dev/v1alpha1"
    kind: str = "CronTask"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


# Runs waiting for their retry a summary remembers, at most (the newest): more than a task
# has in progress at once but by the thousand (``ACTIVE_MAX`` lists as many).
RETRIED_KEPT = 100


@dataclasses.dataclass(frozen=True, slots=True)
class RunSummary:
    """What the runs seen so far say, folded one record at a time (:meth:`observe`).

    ``last_failure`` is the end of the last run that ended failed, as the metric's last
    failure and the notifications judge it: a failed attempt that the dispatcher retries (a
    :class:`RetriedAttempt`) has not ended its run, and counts only if its retry never comes
    (abandoned, or cut short by crontask's shutdown). ``retried`` holds those attempts'
    ``(run id, end)`` meanwhile."""

    latest: RunRecord | None = None
    last_schedule: datetime | None = None  # the latest slot of the schedule that ran
    last_success: datetime | None = None
    last_failure: datetime | None = None
    retried: tuple[tuple[str, datetime], ...] = ()

    def observe(self, record: RunRecord) -> RunSummary:
        latest = self.latest
        # A skip never hides a run that is still going (the Last Result column would flip
        # between "running" and "skipped" for a Forbid task), nor a run of a later slot: a
        # skip kept while the store did not answer is told once written, maybe after later
        # runs, and the column would go back in time.
        hidden = (
            record.status is RunStatus.SKIPPED
            and latest is not None
            and latest.id != record.id
            and (latest.status is RunStatus.RUNNING or record.scheduled_at < latest.scheduled_at)
        )
        if not hidden:
            latest = record
        last_schedule = self.last_schedule
        if record.status is not RunStatus.SKIPPED and is_scheduled(record):
            last_schedule = _later(last_schedule, record.scheduled_at)
        ended = record.finished_at
        last_success, last_failure = self.last_success, self.last_failure
        retried = self.retried
        if record.status.finished:
            # Its run's earlier attempt, if it waited for this one, waits no more.
            before = next((end for run, end in retried if run == record.id), None)
            retried = tuple(entry for entry in retried if entry[0] != record.id)
            if before is not None and _abandoned(record):
                last_failure = _later(last_failure, before)
        if ended is not None and isinstance(record, RetriedAttempt):
            retried = (*retried, (record.id, ended))[-RETRIED_KEPT:]
        elif ended is not None and record.status is RunStatus.SUCCEEDED:
            last_success = _later(last_success, ended)
        elif ended is not None and is_failure(record):
            last_failure = _later(last_failure, ended)
        return RunSummary(latest, last_schedule, last_success, last_failure, retried)


@dataclasses.dataclass(frozen=True, slots=True)
class TaskState:
    """Where the task stands, from the desired state and what the scheduler holds."""

    invalid: str | None = None  # the object's current spec is not used: why, in words
    invalid_kind: ErrorKind = ErrorKind.INVALID  # and why, as data (its condition's reason)
    conflict: str | None = None  # another location defines the key and wins
    scheduled: bool = False  # the scheduler runs this object's (possibly last good) spec
    suspended: bool = False
    describe: str = ""  # "schedule (zone)" of the definition in force


def task_state(key: str, desired: DesiredState, in_force: Definition | None) -> TaskState:
    errors = [
        e for e in desired.errors if e.key == key and e.location.source == SourceKind.KUBERNETES
    ]
    error = errors[0] if errors else None
    conflict = next(
        (
            str(c)
            for c in desired.conflicts
            if c.key == key and c.winner.source != SourceKind.KUBERNETES
        ),
        None,
    )
    ours = in_force is not None and in_force.location.source == SourceKind.KUBERNETES
    spec = in_force.task.spec if in_force is not None and ours else None
    return TaskState(
        invalid=joined([e.message for e in errors]) if errors else None,
        invalid_kind=error.kind if error is not None else ErrorKind.INVALID,
        conflict=conflict,
        scheduled=ours,
        suspended=bool(spec and spec.suspend),
        describe=f"{spec.schedule} ({spec.time_zone})" if spec else "",
    )


def joined(messages: list[str]) -> str:
    """A spec's errors in one message (its conditions' and its ``InvalidSpec`` Event's): all
    of them, as the log has them, not the first alone (fixed, it would only give way to the
    next). Bounded: the first whole, then those that fit in :data:`INVALID_MORE_CHARS` more,
    :data:`INVALID_SHOWN` at most; the rest counted (``and 3 more``)."""
    shown, room = messages[:1], INVALID_MORE_CHARS
    for message in messages[1:INVALID_SHOWN]:
        room -= len(message) + 2
        if room < 0:
            break
        shown.append(message)
    more = len(messages) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more else "")


def active_reference(record: RunRecord) -> dict[str, str]:
    """The ``status.active`` entry of a running run: its Job as an object reference (as a
    CronJob's), or, for a run with no Kubernetes object, its run id as the name."""
    job = record.job
    if job is None:
        return {"name": record.id}
    ref = {"apiVersion": "batch/v1", "kind": "Job", "namespace": job.namespace, "name": job.name}
    if job.uid:
        ref["uid"] = job.uid
    return ref


@dataclasses.dataclass(frozen=True, slots=True)
class StatusInputs:
    generation: int
    state: TaskState
    runs: RunSummary = RunSummary()
    active: tuple[RunRecord, ...] = ()
    next_run: datetime | None = None
    run_now: str | None = None  # the run-now value handled; None keeps the stored one


def _conditions(state: TaskState) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
    """(status, reason, message) of Ready and of Stalled."""
    if state.conflict:
        return ("False", CONFLICT, state.conflict), ("True", CONFLICT, state.conflict)
    if state.invalid:
        kept = (
            "; the last valid spec keeps running" if state.scheduled else "; nothing is scheduled"
        )
        reason, said = unused_spec(state.invalid, state.invalid_kind)
        message = f"{said}{kept}"
        return ("False", reason, message), ("True", reason, message)
    if not state.scheduled:
        message = "not scheduled yet"
        return ("False", PENDING, message), ("False", PENDING, message)
    if state.suspended:
        message = "spec.suspend is true: no new runs"
        return ("False", SUSPENDED, message), ("False", SUSPENDED, message)
    message = f"scheduled: {state.describe}"
    return ("True", SCHEDULED, message), ("False", SCHEDULED, message)


def unused_spec(invalid: str, kind: ErrorKind) -> tuple[str, str]:
    """The reason and the words of a CronTask crontask does not use (its conditions' and its
    Warning Event's), by the ``kind`` of its error: its spec is invalid, or its source is past
    ``--max-tasks``, which is no fault of the spec (a user told "spec is invalid" looks for an
    error that is not there)."""
    if kind is ErrorKind.TASK_LIMIT:
        return TASK_LIMIT, invalid
    return INVALID_SPEC, f"spec is invalid: {invalid}"


def _condition(
    kind: str,
    wanted: tuple[str, str, str],
    generation: int,
    current: Mapping[str, Any],
    now: datetime,
) -> dict[str, Any]:
    status, reason, message = wanted
    before = next(
        (
            c
            for c in _stored_conditions(current)
            if isinstance(c, Mapping) and c.get("type") == kind
        ),
        None,
    )
    since = rfc3339(now)
    if before is not None and before.get("status") == status and before.get("lastTransitionTime"):
        since = str(before["lastTransitionTime"])
    return {
        "type": kind,
        "status": status,
        "observedGeneration": generation,
        "lastTransitionTime": since,
        "reason": reason,
        "message": message,
    }


def foreign_conditions(current: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The conditions of ``current`` that other controllers own, unchanged and in order: every
    one whose type is not crontask's (``conditions`` is a list-map keyed by type, and a merge
    patch replaces a list whole, so a condition left out of crontask's list is deleted). At
    most :data:`FOREIGN_CONDITIONS_MAX`, one per type; an entry with no string type is no
    condition the API server would have stored, and is left out."""
    kept: list[dict[str, Any]] = []
    seen: set[str] = set()
    for condition in _stored_conditions(current):
        if len(kept) == FOREIGN_CONDITIONS_MAX:
            break
        if not isinstance(condition, Mapping):
            continue
        kind = condition.get("type")
        if isinstance(kind, str) and kind not in OWN_CONDITIONS and kind not in seen:
            seen.add(kind)
            kept.append(dict(condition))
    return kept


def _stored_conditions(current: Mapping[str, Any]) -> list[Any]:
    conditions = current.get("conditions")
    return conditions if isinstance(conditions, list) else []


def _last_run(record: RunRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"id": record.id, "result": str(record.status)}
    if record.started_at is not None:
        out["startTime"] = rfc3339(record.started_at)
    if record.finished_at is not None and record.status is not RunStatus.RUNNING:
        out["completionTime"] = rfc3339(record.finished_at)
    if record.duration_ms is not None and record.status is not RunStatus.RUNNING:
        out["durationMs"] = max(0, record.duration_ms)
    if record.exit_code is not None:
        out["exitCode"] = record.exit_code
    message = record.message or record.reason
    if message:
        out["message"] = message
    if record.job is not None:
        out["job"] = {
            "name": record.job.name,
            **({"uid": record.job.uid} if record.job.uid else {}),
        }
    return out


def _newest(records: tuple[RunRecord, ...], most: int) -> tuple[RunRecord, ...]:
    """The ``most`` newest of ``records`` by slot, in the order they came."""
    if len(records) <= most:
        return records
    order = sorted(range(len(records)), key=lambda i: (records[i].scheduled_at, records[i].id))
    return tuple(records[i] for i in sorted(order[-most:]))


def _time_field(
    current: Mapping[str, Any], name: str, seen: datetime | None, now: datetime
) -> str | None:
    """The later of the stored time and the one crontask saw. A stored one that is no time
    (see :func:`parse_time`), or is more than :data:`FUTURE_MARGIN` ahead of ``now``, is taken
    for absent: anyone who may write the status may write it, and kept, it would never give way
    to a real run's (``9999-12-31T23:59:59Z`` is later than all of them)."""
    stored = parse_time(current.get(name))
    if stored is not None and stored > now + FUTURE_MARGIN:
        stored = None
    best = _later(stored, seen)
    return rfc3339(best) if best is not None else None


def derive_status(
    current: Mapping[str, Any], inputs: StatusInputs, now: datetime
) -> dict[str, Any]:
    """The whole status crontask wants on the object (see the module docstring)."""
    ready, stalled = _conditions(inputs.state)
    status: dict[str, Any] = {
        "observedGeneration": inputs.generation,
        "conditions": [
            _condition(READY, ready, inputs.generation, current, now),
            _condition(STALLED, stalled, inputs.generation, current, now),
            *foreign_conditions(current),
        ],
        "active": [active_reference(r) for r in _newest(inputs.active, ACTIVE_MAX)],
        "activeCount": len(inputs.active),
    }
    runs = inputs.runs
    for name, seen in (
        ("lastScheduleTime", runs.last_schedule),
        ("lastSuccessfulTime", runs.last_success),
        ("lastFailureTime", runs.last_failure),
    ):
        value = _time_field(current, name, seen, now)
        if value is not None:
            status[name] = value
    if inputs.state.scheduled and not inputs.state.suspended and inputs.next_run is not None:
        status["nextScheduleTime"] = rfc3339(inputs.next_run)
    if runs.latest is not None:
        status["lastRun"] = _last_run(runs.latest)
    elif isinstance(current.get("lastRun"), Mapping):
        status["lastRun"] = dict(current["lastRun"])
    run_now = inputs.run_now or current.get("lastRunNow")
    if isinstance(run_now, str) and run_now:
        status["lastRunNow"] = run_now
    return status


def merge_patch(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The RFC 7386 merge patch that turns ``current`` into ``wanted``; ``{}`` if equal.
    Lists are replaced whole (as merge patches do); a key missing from ``wanted`` is removed."""
    patch: dict[str, Any] = {}
    for key, value in wanted.items():
        before = current.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            inner = merge_patch(before, value)
            if inner:
                patch[key] = inner
        elif before != value or key not in current:
            patch[key] = value
    for key in current:
        if key not in wanted:
            patch[key] = None
    return patch


def run_now_due(ref: ObjectRef, handled: str | None) -> str | None:
    """The run-now value to act on, or None: set, and neither handled by this process nor
    recorded as handled in the stored status (which is what survives a restart)."""
    value = ref.run_now
    if not value:
        return None
    if value == handled or value == ref.status.get("lastRunNow"):
        return None
    return value


def run_now_refused(value: str) -> str | None:
    """Why a due run-now ``value`` is not acted on, or None if it may be."""
    if len(value) > MAX_RUN_NOW:
        return f"value too long ({len(value)} characters, at most {MAX_RUN_NOW})"
    return None


def run_now_recorded(patch: Mapping[str, Any] | None, value: str) -> bool:
    """Whether the status write that applied ``patch`` (None: no write was made) is the one
    that recorded ``value`` as ``lastRunNow``: only its writer starts the run. A write whose
    patch leaves ``lastRunNow`` out found it stored already (by another replica, or by an
    earlier write whose answer was lost): the run is not started a second time."""
    return patch is not None and patch.get("lastRunNow") == value


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)
