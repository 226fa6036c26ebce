"""``core.jobs``: Job names, manifests, and what a Job's end means for its run (tables)."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reconciler.core.desired import Definition, Location
from reconciler.core.jobs import (
    finished,
    job_manifest,
    job_name,
    job_names,
    job_namespace,
    label_value,
    main_container,
    outcome_of,
    run_in,
    run_of,
)
from reconciler.core.model import CronTask
from reconciler.core.run_events import first_log_line, run_event
from reconciler.core.runs import ContainerResult, JobDetails, RunRecord, RunStatus, Trigger, run_id
from reconciler.core.status import ObjectRef
from tests.helpers import task_doc

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
POD: dict[str, Any] = {"containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}


def job_task(
    name: str = "backup", namespace: str = "ops", source: str = "file", **spec: Any
) -> Definition:
    job = spec.pop("job", {"spec": {"template": {"spec": POD}}})
    task = CronTask.model_validate(task_doc(name, namespace, command=None, job=job, **spec))
    return Definition.of(task, Location(source, "x"))


def record(
    key: str = "ops/backup", at: datetime = T0, attempt: int = 1, **fields: Any
) -> RunRecord:
    return RunRecord(
        id=run_id(key, at),
        task=key,
        scheduled_at=at,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.RUNNING,
        attempt=attempt,
        **fields,
    )


# -- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "at", "attempt", "qualified", "expected"),
    [
        ("ops/backup", T0, 1, False, "backup-1796040000"),
        ("ops/backup", T0, 3, False, "backup-1796040000-3"),
        ("ops/backup", T0 + timedelta(microseconds=42), 1, False, "backup-1796040000-m000042"),
        ("ops/backup", T0, 1, True, None),  # hashed: checked below
    ],
)
def test_job_names(
    key: str, at: datetime, attempt: int, qualified: bool, expected: str | None
) -> None:
    name = job_name(key, at, attempt, qualified=qualified)
    assert DNS1123.match(name)
    assert len(name) <= 63
    if expected is not None:
        assert name == expected
    assert name == job_name(key, at, attempt, qualified=qualified)  # deterministic


def test_names_stay_unique_and_within_63_characters() -> None:
    long = "a" * 63
    keys = [("a-b", "c"), ("a", "b-c"), ("x", long), ("y", long), ("x", long[:-1] + "b")]
    at = T0 + timedelta(microseconds=123456)
    for qualified in (True, False):
        names = [job_name(f"{ns}/{n}", at, 100, qualified=qualified) for ns, n in keys]
        assert all(len(n) <= 63 and DNS1123.match(n) for n in names)
        # Two tasks never share a Job name in one namespace: unqualified names go to each
        # task's own namespace, qualified (and cut) ones carry the key's hash.
        if qualified:
            assert len(set(names)) == len(names)
        else:
            assert names[2] != names[4]  # both in namespace x, names cut: the hash differs
    assert job_name("ops/backup", T0, 1, qualified=True) != job_name(
        "dev/backup", T0, 1, qualified=True
    )


def key_hash(key: str, size: int) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:size]


def test_a_task_named_after_another_tasks_hash_does_not_take_its_job_names() -> None:
    # ops/nightly, from a folder, runs its Jobs in namespace batch: its names carry its key's
    # hash. A CronTask made in batch and named that way would have had the very same names
    # (its Jobs go to its own namespace, unhashed): the second create got 409 JobNameTaken.
    folder = job_name("ops/nightly", T0, 1, qualified=True)
    posing = "batch/nightly-" + key_hash("ops/nightly", 16)
    assert folder == f"nightly-{key_hash('ops/nightly', 16)}-1796040000"
    for attempt in (1, 2, 1000):
        for at in (T0, T0 + timedelta(microseconds=5)):
            assert job_name(posing, at, attempt, qualified=False) != job_name(
                "ops/nightly", at, attempt, qualified=True
            )
    # Hashed itself, it is still a name of its own task's.
    assert job_name(posing, T0, 1, qualified=False).startswith(posing.partition("/")[2] + "-")


def test_job_names_stay_distinct_when_names_are_made_of_other_keys_hashes() -> None:
    keys = ["ops/nightly", "dev/nightly", "ops/" + "n" * 60, "ops/" + "n" * 59 + "m"]
    keys += [f"batch/nightly-{key_hash(k, size)}" for k in keys for size in (8, 16)]
    keys += [f"batch/{k.partition('/')[2][:30]}-{key_hash(k, 16)}" for k in keys[2:4]]
    assert len(set(keys)) == len(keys)
    for at in (T0, T0 + timedelta(microseconds=123456)):
        for attempt in (1, 7):
            # The Jobs of every task go to namespace batch: its own tasks' unqualified.
            names = [job_name(k, at, attempt, qualified=not k.startswith("batch/")) for k in keys]
            assert len(set(names)) == len(names)
            assert all(len(n) <= 63 and DNS1123.match(n) for n in names)


def test_jobs_named_by_an_earlier_crontask_are_still_the_tasks_runs() -> None:
    # Before, the hash had 8 hex digits and a name ending like a hash was left as it was: a
    # Job running across the upgrade, or kept by the history limits, is still followed.
    long_key = "ops/" + "x" * 60
    looks_hashed = "ops/report-" + "0123456789abcdef"
    earlier = {
        ("ops/nightly", True): f"nightly-{key_hash('ops/nightly', 8)}-1796040000",
        (long_key, False): f"{'x' * 43}-{key_hash(long_key, 8)}-1796040000",
        (looks_hashed, False): "report-0123456789abcdef-1796040000",
    }
    for (key, qualified), name in earlier.items():
        assert name != job_name(key, T0, 1, qualified=qualified)
        assert name in job_names(key, T0, 1, qualified=qualified)
        namespace, task_name = key.split("/")
        where = "batch" if qualified else namespace
        definition = job_task(task_name, namespace, job={"spec": {"template": {"spec": POD}}})
        run = record(key)
        job = job_manifest(definition, run, namespace=where, name=name, env={})
        found = run_in(job, key, where)
        assert found is not None
        assert found.run_id == run.id
        job["metadata"]["name"] = name.replace("1796040000", "1796040001")
        assert run_in(job, key, where) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ops/backup", "ops.backup"),
        ("ops.backup.20261130T120000Z", "ops.backup.20261130T120000Z"),
        ("a" * 63 + "/" + "b" * 63, None),
    ],
)
def test_label_values(text: str, expected: str | None) -> None:
    value = label_value(text)
    assert len(value) <= 63
    assert re.match(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$", value)
    if expected is not None:
        assert value == expected
    else:
        assert value != label_value(text[:-1] + "c")  # the hash tells long values apart


def test_where_jobs_go() -> None:
    assert job_namespace(job_task(), "crontask") == "crontask"  # --job-namespace
    named = job_task(job={"namespace": "batch", "spec": {"template": {"spec": POD}}})
    assert job_namespace(named, "crontask") == "batch"
    assert job_namespace(job_task(source="kubernetes"), "crontask") == "ops"  # its own


# -- manifests ---------------------------------------------------------------------------------


def test_the_manifest_carries_the_run_and_the_defaults() -> None:
    definition = job_task(
        timeoutSeconds=600,
        job={"metadata": {"labels": {"team": "x"}}, "spec": {"template": {"spec": POD}}},
    )
    owner = ObjectRef("ops", "backup", "uid-ct", "7", 1)
    env = {"CRONTASK_RUN_ID": "ops.backup.x", "CRONTASK_ATTEMPT": "1"}
    body = job_manifest(
        definition, record(), namespace="ops", name="backup-1", env=env, owner=owner
    )
    meta = body["metadata"]
    assert meta["labels"] == {
        "team": "x",
        "crontask.dev/task": "ops.backup",
        "crontask.dev/run-id": "ops.backup.20261130T120000Z",
    }
    assert meta["annotations"] == {
        "crontask.dev/task": "ops/backup",
        "crontask.dev/run-id": "ops.backup.20261130T120000Z",
        "crontask.dev/attempt": "1",
        "crontask.dev/trigger": "schedule",
        "crontask.dev/scheduled-time": "2026-11-30T12:00:00Z",
    }
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "crontask.dev/v1alpha1",
            "kind": "CronTask",
            "name": "backup",
            "uid": "uid-ct",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    spec = body["spec"]
    assert spec["activeDeadlineSeconds"] == 600
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert (
        spec["template"]["metadata"]["labels"]["crontask.dev/run-id"]
        == meta["labels"]["crontask.dev/run-id"]
    )
    assert pod["containers"][0]["env"] == [{"name": k, "value": v} for k, v in env.items()]
    assert "env" not in POD["containers"][0]  # the definition is never changed


def test_what_the_jobspec_says_wins() -> None:
    container = {**POD["containers"][0], "env": [{"name": "CRONTASK_ATTEMPT", "value": "mine"}]}
    spec = {
        "activeDeadlineSeconds": 30,
        "template": {"spec": {"restartPolicy": "OnFailure", "containers": [container]}},
    }
    body = job_manifest(
        job_task(timeoutSeconds=600, job={"spec": spec}),
        record(),
        namespace="ops",
        name="n",
        env={"CRONTASK_ATTEMPT": "1", "CRONTASK_RUN_ID": "r"},
    )
    assert body["spec"]["activeDeadlineSeconds"] == 30
    pod = body["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "OnFailure"
    assert pod["containers"][0]["env"] == [
        {"name": "CRONTASK_ATTEMPT", "value": "mine"},
        {"name": "CRONTASK_RUN_ID", "value": "r"},
    ]
    assert "ownerReferences" not in body["metadata"]


@pytest.mark.parametrize("at", [T0, T0 + timedelta(microseconds=5)])
def test_a_job_tells_its_run(at: datetime) -> None:
    manual = dataclasses.replace(record(at=at, attempt=2), trigger=Trigger.MANUAL)
    body = job_manifest(job_task(), manual, namespace="ops", name="n", env={})
    run = run_of(body)
    assert run is not None
    assert (run.task, run.run_id, run.attempt, run.scheduled_at, run.trigger) == (
        "ops/backup",
        manual.id,
        2,
        at,
        Trigger.MANUAL,
    )
    del body["metadata"]["labels"]["crontask.dev/run-id"]
    assert run_of(body) is None  # not (or no longer) crontask's: never touched
    assert run_of({"metadata": {"labels": {"crontask.dev/run-id": "x"}, "annotations": {}}}) is None


# -- outcomes ----------------------------------------------------------------------------------


def job_with(*conditions: tuple[str, str], **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "j", "namespace": "ops", "uid": "u"},
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "side"}, {"name": "main"}]},
                "metadata": {"annotations": {"kubectl.kubernetes.io/default-container": "main"}},
            }
        },
        "status": {
            "conditions": [
                {"type": t, "status": "True", "reason": r, "message": f"{r}!"}
                for t, r in conditions
            ],
            **status,
        },
    }


def pod_with(**states: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "j-abcde"},
        "spec": {"nodeName": "node-1"},
        "status": {"containerStatuses": [{"name": n, "state": s} for n, s in states.items()]},
    }


def test_only_complete_and_failed_are_the_end() -> None:
    assert finished(job_with(("SuccessCriteriaMet", "CompletionsReached"))) is None
    assert finished(job_with(("FailureTarget", "BackoffLimitExceeded"))) is None
    assert finished(job_with(("FailureTarget", "X"), ("Failed", "X"))) == ("Failed", "X", "X!")


@pytest.mark.parametrize(
    ("conditions", "states", "expected"),
    [
        (
            [("Complete", "CompletionsReached")],
            {"main": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            (RunStatus.SUCCEEDED, 0, None, "Job j completed"),
        ),
        (
            [("Failed", "BackoffLimitExceeded")],
            {
                "side": {"running": {}},
                "main": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
            },
            (
                RunStatus.FAILED,
                137,
                "BackoffLimitExceeded",
                "Job j failed: BackoffLimitExceeded! (container main: exit code 137 OOMKilled)",
            ),
        ),
        (
            [("Failed", "DeadlineExceeded")],
            {"main": {"waiting": {"reason": "ImagePullBackOff"}}},
            (
                RunStatus.TIMED_OUT,
                None,
                "DeadlineExceeded",
                "Job j failed: DeadlineExceeded! (container main: ImagePullBackOff)",
            ),
        ),
        (
            [("Failed", "PodFailurePolicy")],
            {},
            (RunStatus.FAILED, None, "PodFailurePolicy", "Job j failed: PodFailurePolicy!"),
        ),
    ],
)
def test_outcomes(
    conditions: list[tuple[str, str]], states: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    job = job_with(*conditions, startTime="2026-11-30T12:00:01Z")
    pod = pod_with(**states) if states else None
    ended = outcome_of(job, pod, main=main_container(job))
    assert (ended.status, ended.exit_code, ended.reason, ended.message) == expected
    assert ended.details.started_at == T0 + timedelta(seconds=1)
    if pod is not None:
        assert (ended.details.pod, ended.details.node) == ("j-abcde", "node-1")
        assert [c.name for c in ended.details.containers] == list(states)


def test_the_main_container_is_the_default_container_or_the_first() -> None:
    job = job_with()
    assert main_container(job) == "main"
    del job["spec"]["template"]["metadata"]
    assert main_container(job) == "side"


# -- what people see -----------------------------------------------------------------------------


def test_a_failed_job_runs_event_gives_the_reason_and_the_first_log_line() -> None:
    job = JobDetails("ops", "backup-1", "u", containers=(ContainerResult("main", 3, "Error"),))
    failed = record().finish(
        RunStatus.FAILED,
        finished_at=T0,
        exit_code=3,
        reason="BackoffLimitExceeded",
        output="[... 10 bytes truncated ...]\n\n  pg_dump: connection refused  \nmore\n",
        job=job,
    )
    event = run_event(failed)
    assert event is not None
    assert event.message == (
        "run failed: BackoffLimitExceeded (Job backup-1, exit code 3): pg_dump: connection refused"
    )
    assert first_log_line("x" * 500) == "x" * 197 + "..."
    assert first_log_line("") == ""
