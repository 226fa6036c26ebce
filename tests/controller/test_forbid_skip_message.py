"""What a slot ``Forbid`` turns away says of the runs that hold it: a Job being deleted that a
finalizer holds (Terminating, its pods still running) was said "still running", and an operator
looked for a slow run rather than at the finalizer; and a run whose retry runs beside the held
Job of its attempt before was said "being deleted". A table over the message; the real program
against the cluster emulator is ``tests/jobs/test_forbid_held_job.py``."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from reconciler.controller.active import ActiveRun
from reconciler.controller.skips import being_deleted, forbidden
from reconciler.core.jobs import TERMINATING
from reconciler.core.runs import RunRecord, RunStatus, Trigger

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
HELD = (
    "previous run's Job is being deleted ({}): Terminating, held by a finalizer while its pods run"
)


def going(run: str, *, claiming: bool = False) -> ActiveRun:
    record = RunRecord(
        id=run,
        task="default/t",
        scheduled_at=T0,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.RUNNING,
        started_at=T0,
        owner="h:1:x",
    )
    return ActiveRun(record, claiming=claiming)


@pytest.mark.parametrize(
    ("runs", "deleting", "said"),
    [
        ([going("a")], set(), "previous run still running (a); policy Forbid"),
        (
            [going("a", claiming=True)],
            set(),
            "previous run not started yet, its claim waiting for the run store (a); policy Forbid",
        ),
        ([going("a")], {"a"}, HELD.format("a") + "; policy Forbid"),
        (
            [going("b"), going("a")],
            {"b"},
            "previous run still running (a); " + HELD.format("b") + "; policy Forbid",
        ),
        ([going("b"), going("a")], {"a", "b", "c"}, HELD.format("a, b") + "; policy Forbid"),
    ],
)
def test_forbid_says_what_holds_the_slot(
    runs: list[ActiveRun], deleting: set[str], said: str
) -> None:
    assert forbidden({a.record.id: a for a in runs}, deleting) == said


def attempt(run: str, number: int, reason: str | None = None) -> RunRecord:
    record = going(run).record
    return dataclasses.replace(record, attempt=number, reason=reason)


@pytest.mark.parametrize(
    ("attempts", "live", "deleting"),
    [
        ({"a": 1}, [attempt("a", 1, TERMINATING)], {"a"}),
        ({"a": 1}, [attempt("a", 1)], set()),
        # Its retry runs beside the held Job of the attempt before: still running.
        ({"a": 2}, [attempt("a", 1, TERMINATING), attempt("a", 2)], set()),
        ({"a": 2}, [attempt("a", 1, TERMINATING)], set()),  # the retry waits, or starts
        ({"a": 1}, [attempt("b", 1, TERMINATING)], set()),  # not a run followed here
    ],
)
def test_being_deleted_is_the_attempt_the_run_is_at(
    attempts: dict[str, int], live: list[RunRecord], deleting: set[str]
) -> None:
    running = {
        run: ActiveRun(dataclasses.replace(going(run).record, attempt=number))
        for run, number in attempts.items()
    }
    assert being_deleted(running, live) == deleting
