"""The pure status derivation (reconciler.core.status), table by table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reconciler.core.desired import Conflict, Definition, DefinitionError, DesiredState, Location
from reconciler.core.model import CronTask
from reconciler.core.run_events import run_event
from reconciler.core.runs import JobDetails, RunRecord, RunStatus, Trigger
from reconciler.core.status import (
    ACTIVE_MAX,
    ObjectRef,
    RunSummary,
    StatusInputs,
    TaskState,
    derive_status,
    merge_patch,
    run_now_due,
    task_state,
)

T0 = datetime(2027, 1, 1, 12, 0, 0, tzinfo=UTC)
K8S = Location("kubernetes", "ops/backup")


def definition(location: Location = K8S, **spec: Any) -> Definition:
    task = CronTask.model_validate(
        {
            "apiVersion": "crontask.dev/v1alpha1",
            "kind": "CronTask",
            "metadata": {"name": "backup", "namespace": "ops"},
            "spec": {"schedule": "0 2 * * *", "command": {"args": ["true"]}, **spec},
        }
    )
    return Definition.of(task, location)


def record(status: RunStatus, at: datetime, **kw: Any) -> RunRecord:
    base: dict[str, Any] = {
        "id": f"ops.backup.{at:%H%M%S}Z",
        "task": "ops/backup",
        "scheduled_at": at,
        "trigger": Trigger.SCHEDULE,
        "status": status,
        "started_at": at,
    }
    if status is not RunStatus.RUNNING:
        base["finished_at"] = at + timedelta(seconds=2)
    base.update(kw)
    return RunRecord(**base)


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


SCHEDULED = TaskState(scheduled=True, describe="0 2 * * * (UTC)")


@pytest.mark.parametrize(
    ("state", "ready", "stalled"),
    [
        (SCHEDULED, ("True", "Scheduled"), ("False", "Scheduled")),
        (TaskState(scheduled=True, suspended=True), ("False", "Suspended"), ("False", "Suspended")),
        (
            TaskState(invalid="spec.schedule: bad"),
            ("False", "InvalidSpec"),
            ("True", "InvalidSpec"),
        ),
        (
            TaskState(invalid="spec.schedule: bad", scheduled=True),
            ("False", "InvalidSpec"),
            ("True", "InvalidSpec"),
        ),
        (TaskState(conflict="defined twice"), ("False", "Conflict"), ("True", "Conflict")),
        (TaskState(), ("False", "Pending"), ("False", "Pending")),
    ],
)
def test_conditions_by_state(
    state: TaskState, ready: tuple[str, str], stalled: tuple[str, str]
) -> None:
    status = derive_status({}, StatusInputs(generation=3, state=state), T0)
    assert conditions(status) == {"Ready": ready, "Stalled": stalled}
    for condition in status["conditions"]:
        assert condition["observedGeneration"] == 3
        assert condition["lastTransitionTime"] == "2027-01-01T12:00:00Z"
        assert condition["message"]  # always present
    assert status["observedGeneration"] == 3


def test_invalid_spec_says_whether_the_last_good_one_runs() -> None:
    kept = derive_status({}, StatusInputs(1, TaskState(invalid="x", scheduled=True)), T0)
    none = derive_status({}, StatusInputs(1, TaskState(invalid="x")), T0)
    assert "last valid spec keeps running" in kept["conditions"][0]["message"]
    assert "nothing is scheduled" in none["conditions"][0]["message"]


@pytest.mark.parametrize(
    ("before", "after", "moves"),
    [
        (SCHEDULED, SCHEDULED, False),  # nothing changed
        (SCHEDULED, TaskState(invalid="x"), True),  # True -> False
        (TaskState(invalid="x"), TaskState(conflict="y"), False),  # False -> False, new reason
        (TaskState(scheduled=True, suspended=True), SCHEDULED, True),  # False -> True
    ],
)
def test_last_transition_time_moves_only_on_a_status_change(
    before: TaskState, after: TaskState, moves: bool
) -> None:
    first = derive_status({}, StatusInputs(1, before), T0)
    later = T0 + timedelta(hours=1)
    second = derive_status(first, StatusInputs(2, after), later)
    ready = second["conditions"][0]
    expected = "2027-01-01T13:00:00Z" if moves else "2027-01-01T12:00:00Z"
    assert ready["lastTransitionTime"] == expected
    assert ready["observedGeneration"] == 2


def test_a_run_interrupted_by_crontasks_shutdown_sets_no_last_failure() -> None:
    runs = RunSummary().observe(record(RunStatus.SUCCEEDED, T0))
    deployed = runs.observe(
        record(RunStatus.INTERRUPTED, T0 + timedelta(minutes=1), reason="Shutdown")
    )
    assert deployed.last_failure is None
    assert deployed.last_success == T0 + timedelta(seconds=2)
    died = runs.observe(
        record(RunStatus.INTERRUPTED, T0 + timedelta(minutes=1), reason="ProcessDied")
    )
    assert died.last_failure == T0 + timedelta(minutes=1, seconds=2)


def test_run_fields() -> None:
    runs = RunSummary()
    runs = runs.observe(record(RunStatus.RUNNING, T0))
    runs = runs.observe(
        record(RunStatus.SUCCEEDED, T0, exit_code=0, message="exited with status 0")
    )
    runs = runs.observe(record(RunStatus.FAILED, T0 + timedelta(minutes=1), exit_code=3))
    going = record(RunStatus.RUNNING, T0 + timedelta(minutes=2), id="ops.backup.x")
    inputs = StatusInputs(1, SCHEDULED, runs, active=(going,), next_run=T0 + timedelta(hours=14))
    status = derive_status({}, inputs, T0 + timedelta(minutes=2))
    assert status["lastScheduleTime"] == "2027-01-01T12:01:00Z"
    assert status["lastSuccessfulTime"] == "2027-01-01T12:00:02Z"
    assert status["lastFailureTime"] == "2027-01-01T12:01:02Z"
    assert status["nextScheduleTime"] == "2027-01-02T02:00:00Z"
    assert status["active"] == [{"name": "ops.backup.x"}]  # no Kubernetes object: the run id
    assert status["activeCount"] == 1
    assert status["lastRun"] == {
        "id": "ops.backup.120100Z",
        "result": "failed",
        "startTime": "2027-01-01T12:01:00Z",
        "completionTime": "2027-01-01T12:01:02Z",
        "durationMs": 2000,
        "exitCode": 3,
    }


def test_a_skip_does_not_hide_a_running_run() -> None:
    runs = RunSummary().observe(record(RunStatus.RUNNING, T0))
    skipped = record(
        RunStatus.SKIPPED, T0 + timedelta(minutes=1), reason="ConcurrencyForbid", started_at=None
    )
    runs = runs.observe(skipped)
    assert runs.latest is not None
    assert runs.latest.status is RunStatus.RUNNING
    assert runs.last_schedule == T0  # a skipped slot is not a schedule


def test_stored_times_survive_a_restart_and_only_move_forward() -> None:
    stored = {
        "lastSuccessfulTime": "2027-01-01T11:00:00Z",
        "lastFailureTime": "2027-01-01T13:00:00Z",
    }
    runs = RunSummary().observe(record(RunStatus.SUCCEEDED, T0))
    runs = runs.observe(record(RunStatus.FAILED, T0))
    status = derive_status(stored, StatusInputs(1, SCHEDULED, runs), T0)
    assert status["lastSuccessfulTime"] == "2027-01-01T12:00:02Z"  # newer than stored
    assert status["lastFailureTime"] == "2027-01-01T13:00:00Z"  # stored is newer
    kept = derive_status(
        {"lastRun": {"id": "x", "result": "succeeded"}}, StatusInputs(1, SCHEDULED), T0
    )
    assert kept["lastRun"] == {"id": "x", "result": "succeeded"}


def test_no_next_schedule_while_suspended_or_invalid() -> None:
    for state in (TaskState(scheduled=True, suspended=True), TaskState(invalid="x")):
        status = derive_status({}, StatusInputs(1, state, next_run=T0), T0)
        assert "nextScheduleTime" not in status


def test_derivation_is_a_fixed_point() -> None:
    inputs = StatusInputs(1, SCHEDULED, RunSummary().observe(record(RunStatus.SUCCEEDED, T0)))
    first = derive_status({}, inputs, T0)
    again = derive_status(first, inputs, T0 + timedelta(hours=5))
    assert merge_patch(first, again) == {}


@pytest.mark.parametrize(
    ("current", "wanted", "patch"),
    [
        ({}, {}, {}),
        ({"a": 1}, {"a": 1}, {}),
        ({"a": 1}, {"a": 2}, {"a": 2}),
        ({"a": 1, "b": 2}, {"a": 1}, {"b": None}),
        ({"r": {"x": 1, "y": 2}}, {"r": {"x": 1}}, {"r": {"y": None}}),
        ({"l": [1, 2]}, {"l": [1]}, {"l": [1]}),
        ({}, {"a": None}, {"a": None}),
    ],
)
def test_merge_patch(
    current: dict[str, Any], wanted: dict[str, Any], patch: dict[str, Any]
) -> None:
    assert merge_patch(current, wanted) == patch


@pytest.mark.parametrize(
    ("annotation", "handled", "stored", "due"),
    [
        (None, None, None, None),
        ("1", None, None, "1"),
        ("1", "1", None, None),  # handled by this process
        ("1", None, "1", None),  # handled before a restart
        ("2", "1", "1", "2"),  # a new value
        ("", None, None, None),
    ],
)
def test_run_now_due(
    annotation: str | None, handled: str | None, stored: str | None, due: str | None
) -> None:
    ref = ObjectRef(
        "ops", "backup", "u", "1", 1, annotation, {"lastRunNow": stored} if stored else {}
    )
    assert run_now_due(ref, handled) == due


def test_run_now_is_recorded_and_kept() -> None:
    status = derive_status({}, StatusInputs(1, SCHEDULED, run_now="42"), T0)
    assert status["lastRunNow"] == "42"
    assert derive_status(status, StatusInputs(1, SCHEDULED), T0)["lastRunNow"] == "42"


@pytest.mark.parametrize(
    ("status", "kw", "expected"),
    [
        (RunStatus.FAILED, {"exit_code": 1}, ("Warning", "RunFailed", "run failed: exit code 1")),
        (
            RunStatus.TIMED_OUT,
            {"reason": "Timeout"},
            ("Warning", "RunFailed", "run timed out: Timeout"),
        ),
        (RunStatus.SKIPPED, {"reason": "ConcurrencyForbid"}, ("Normal", "SlotSkipped", None)),
        (RunStatus.SKIPPED, {"reason": "MissedDeadline"}, ("Warning", "SlotSkipped", None)),
        (RunStatus.SKIPPED, {"reason": "TooManyRuns"}, ("Warning", "SlotSkipped", None)),
        (RunStatus.SUCCEEDED, {}, None),
        (RunStatus.RUNNING, {}, None),
        (RunStatus.RUNNING, {"trigger": Trigger.MANUAL}, ("Normal", "RunStarted", None)),
    ],
)
def test_run_events(
    status: RunStatus, kw: dict[str, Any], expected: tuple[str, ...] | None
) -> None:
    event = run_event(record(status, T0, **kw))
    if expected is None:
        assert event is None
        return
    assert event is not None
    assert (event.type, event.reason) == expected[:2]
    if expected[2] is not None:
        assert event.message == expected[2]


def test_task_state_from_the_desired_state() -> None:
    ours = definition()
    file_loc = Location("file", "tasks/backup.yaml", 1, 1)
    error = DefinitionError(K8S, "spec.schedule: bad", "ops/backup")
    assert task_state("ops/backup", DesiredState({"ops/backup": ours}), ours).scheduled
    invalid = task_state("ops/backup", DesiredState({}, errors=(error,)), ours)
    assert invalid.invalid == "spec.schedule: bad"
    assert invalid.scheduled
    lost = DesiredState({}, conflicts=(Conflict("ops/backup", file_loc, (K8S,)),))
    state = task_state("ops/backup", lost, definition(file_loc))
    assert state.conflict
    assert not state.scheduled
    won = DesiredState({}, conflicts=(Conflict("ops/backup", K8S, (file_loc,)),))
    assert task_state("ops/backup", won, ours).conflict is None
    suspended = definition(suspend=True)
    assert task_state("ops/backup", DesiredState({}), suspended).suspended


def test_every_status_field_written_is_in_the_crd_schema() -> None:
    """A real API server prunes status fields its CRD does not declare (the emulator does
    not), so a field missing from the schema would silently vanish in a cluster."""
    from reconciler.core.crd import crd_document

    job = JobDetails("ops", "backup-1798804860", "uid-1")
    runs = RunSummary().observe(record(RunStatus.SUCCEEDED, T0, exit_code=0, message="ok"))
    runs = runs.observe(
        record(RunStatus.FAILED, T0 + timedelta(minutes=1), exit_code=3, message="x", job=job)
    )
    going = record(RunStatus.RUNNING, T0 + timedelta(minutes=2), job=job)
    inputs = StatusInputs(
        4, SCHEDULED, runs, active=(going,), next_run=T0 + timedelta(hours=1), run_now="1"
    )
    status = derive_status({}, inputs, T0 + timedelta(minutes=2))
    (version,) = crd_document()["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]["properties"]["status"]

    def undeclared(value: Any, node: dict[str, Any], path: str) -> list[str]:
        if isinstance(value, dict):
            props = node.get("properties", {})
            return [
                p
                for key, item in value.items()
                for p in (
                    [f"{path}.{key}"]
                    if key not in props
                    else undeclared(item, props[key], f"{path}.{key}")
                )
            ]
        if isinstance(value, list) and "items" in node:
            return [p for item in value for p in undeclared(item, node["items"], f"{path}[]")]
        return []

    assert {"lastRunNow", "lastRun", "conditions", "observedGeneration"} <= set(status)
    assert status["lastRun"]["job"] == {"name": job.name, "uid": "uid-1"}
    assert status["active"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "namespace": "ops",
            "name": job.name,
            "uid": "uid-1",
        }
    ]
    assert undeclared(status, schema, "status") == []


def test_status_active_lists_the_newest_runs_and_counts_them_all() -> None:
    """Thousands of overlapping runs (Allow, every second, hours each) would make a status
    larger than etcd takes: every later status write would fail."""
    going = tuple(
        record(RunStatus.RUNNING, T0 + timedelta(seconds=s), id=f"ops.backup.{s}")
        for s in reversed(range(12_000))  # in no particular order
    )
    inputs = StatusInputs(1, SCHEDULED, RunSummary(), active=going)
    status = derive_status({}, inputs, T0 + timedelta(hours=4))
    assert status["activeCount"] == 12_000
    names = [ref["name"] for ref in status["active"]]
    assert names == [f"ops.backup.{s}" for s in reversed(range(12_000 - ACTIVE_MAX, 12_000))]
    assert len(json.dumps(status)) < 64 * 1024
