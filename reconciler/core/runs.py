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
from datetime import UTC, datetime


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


def split_key(key: str) -> tuple[str, str]:
    """``"ops/nightly-backup"`` -> ``("ops", "nightly-backup")``."""
    namespace, sep, name = key.partition("/")
    if not sep or not namespace or not name:
        raise ValueError(f"task key must be NAMESPACE/NAME, got {key!r}")
    return namespace, name


def run_id(key: str, scheduled_at: datetime) -> str:
    """The deterministic id of the run of ``key`` for the slot at ``scheduled_at``.

    Namespaces and names are DNS-1123 labels (no dots), so ``namespace.name.timestamp`` cannot
    collide between tasks. Sub-second precision is kept only when present (manual triggers).
    """
    if scheduled_at.tzinfo is None:
        raise ValueError("scheduled_at must be timezone-aware")
    namespace, name = split_key(key)
    return f"{namespace}.{name}.{_stamp(scheduled_at)}Z"


@functools.lru_cache(maxsize=64)
def _stamp(scheduled_at: datetime) -> str:
    # Memoised: the runs due in the same second share their slot, and strftime is the costly
    # part of an id. Equal instants in different zones are equal keys and give one stamp.
    at = scheduled_at.astimezone(UTC)
    stamp = at.strftime("%Y%m%dT%H%M%S")
    if at.microsecond:
        stamp += f".{at.microsecond:06d}"
    return stamp


@dataclasses.dataclass(frozen=True, slots=True)
class RunRecord:
    """One attempt of one run. ``(id, attempt)`` is unique in every store.

    All datetimes are timezone-aware UTC. ``output`` is the tail of the combined stdout/stderr
    (or of the response body for HTTP actions), already bounded by the runner.
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
    reason: str | None = None  # CamelCase, e.g. "ConcurrencyForbid", "Timeout"
    message: str | None = None
    output: str = ""
    owner: str | None = None  # the instance that claimed the run: "host:pid:boot-token"

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return int((self.finished_at - self.started_at).total_seconds() * 1000)

    def finish(
        self,
        status: RunStatus,
        *,
        finished_at: datetime,
        exit_code: int | None = None,
        reason: str | None = None,
        message: str | None = None,
        output: str = "",
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
        )
