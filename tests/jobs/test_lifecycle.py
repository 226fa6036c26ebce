"""A Job's run across restarts of crontask; history clean-up; removed tasks; Jobs that are
not crontask's; a crontask without a Kubernetes connection."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from reconciler.core.runs import RunRecord, RunStatus
from tests.helpers import wait_for
from tests.jobs.conftest import Crontask, Gate, condition, jobs, trigger, write_task
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.manifests import job as job_body


def ended(instance: Crontask, task: str) -> list[RunRecord]:
    return [r for r in instance.runs(task) if r.status.finished]


def live(emulator: Emulator, task: str) -> list[dict[str, Any]]:
    return [j for j in jobs(emulator, task) if condition(j) is None]


@pytest.mark.slow
@pytest.mark.parametrize("namespace", [None, "other"], ids=["job-namespace", "its-own"])
def test_kill_9_while_a_job_runs_one_job_one_record(
    crontask: Callable[..., Crontask], emulator: Emulator, tmp_path: Path, namespace: str | None
) -> None:
    """``its-own``: the task's Jobs go to a namespace of its own (spec.job.namespace), which the
    restarted crontask learns from the task's definition only after the first pass has decided
    the slots missed meanwhile: the run's record says where its Job is, before that."""
    gate = Gate(tmp_path)
    instance = crontask()
    own = {"job": {"namespace": namespace}} if namespace else {}
    write_task(instance.tasks, "long", gate.wait("echo done"), schedule="* * * * * *", **own)
    wait_for("a live Job", lambda: live(emulator, "default.long"))
    # The Job exists before its uid is in the run's record: that write follows the create.
    (running,) = wait_for(
        "the Job's uid in the running record",
        lambda: [
            r
            for r in instance.runs("default/long")
            if r.status is RunStatus.RUNNING and r.job is not None and r.job.uid
        ],
    )
    assert running.job is not None
    instance.stop(signal.SIGKILL)

    instance.start()  # the next crontask: same store, same cluster
    # While the Job runs the slots are skipped (Forbid sees the Job in the cluster), and the run
    # stays running: it is adopted, not marked interrupted.
    wait_for(
        "a skip after the restart",
        lambda: [
            r
            for r in instance.runs("default/long")
            if r.reason == "ConcurrencyForbid" and r.scheduled_at > running.scheduled_at
        ],
    )
    now = next(r for r in instance.runs("default/long") if r.id == running.id)
    assert now.status is RunStatus.RUNNING
    instance.wait_log("run adopted")  # said once its stored record is read
    # No slot missed while crontask was down started a Job beside the live one.
    assert [j["metadata"]["name"] for j in jobs(emulator, "default.long")] == [running.job.name]
    gate.open()
    done = wait_for(
        "the adopted run to end",
        lambda: [r for r in ended(instance, "default/long") if r.id == running.id],
        timeout=15,
    )
    assert [(r.attempt, r.status, r.output) for r in done] == [(1, RunStatus.SUCCEEDED, "done\n")]
    assert [j["metadata"]["name"] for j in jobs(emulator, "default.long")].count(
        running.job.name
    ) == 1
    assert not [r for r in instance.runs("default/long") if r.status is RunStatus.INTERRUPTED]


@pytest.mark.slow
def test_sigterm_detaches_and_the_next_start_adopts(
    crontask: Callable[..., Crontask], emulator: Emulator, tmp_path: Path
) -> None:
    gate = Gate(tmp_path)
    instance = crontask(shutdown_grace="30s")
    write_task(instance.tasks, "long", gate.wait("echo done"))
    instance.wait_log("task=default/long")
    run = trigger(instance, "default/long")
    wait_for("a live Job", lambda: live(emulator, "default.long"))
    assert instance.stop() == 0  # at once: a Job needs no grace, it runs on in the cluster
    assert "run detached" in instance.log()
    (record,) = instance.runs("default/long")
    assert record.status is RunStatus.RUNNING

    instance.start()
    instance.wait_log("run adopted")
    gate.open()
    (done,) = wait_for("the run to end", lambda: ended(instance, "default/long"), timeout=15)
    assert (done.id, done.status, done.output) == (run["id"], RunStatus.SUCCEEDED, "done\n")
    assert len(jobs(emulator, "default.long")) == 1


@pytest.mark.slow
def test_a_run_whose_job_is_gone_after_a_restart_is_interrupted(
    crontask: Callable[..., Crontask], emulator: Emulator, k8s_api_client: Any
) -> None:
    instance = crontask()
    write_task(instance.tasks, "long", "sleep 60")
    instance.wait_log("task=default/long")
    trigger(instance, "default/long")
    (job,) = wait_for("a live Job", lambda: live(emulator, "default.long"))
    instance.stop(signal.SIGKILL)
    client.BatchV1Api(k8s_api_client).delete_namespaced_job(
        job["metadata"]["name"], "default", propagation_policy="Background"
    )

    instance.start()
    (record,) = wait_for("the run to end", lambda: ended(instance, "default/long"))
    assert (record.status, record.reason) == (RunStatus.INTERRUPTED, "JobGone")


@pytest.mark.slow
def test_history_limits_delete_finished_jobs(
    crontask: Callable[..., Crontask], emulator: Emulator
) -> None:
    instance = crontask()
    write_task(instance.tasks, "tick", "true", schedule="* * * * * *", successfulRunsHistoryLimit=2)
    wait_for("four runs", lambda: len(ended(instance, "default/tick")) >= 4, timeout=15)
    # Suspended: no new Job comes, so what is left settles (a per-second task on a loaded
    # machine may never pause between two Jobs long enough to look at).
    write_task(
        instance.tasks,
        "tick",
        "true",
        schedule="* * * * * *",
        successfulRunsHistoryLimit=2,
        suspend=True,
    )
    instance.wait_log("task updated")

    def kept_are_the_newest() -> bool:
        finished = {j["metadata"]["name"] for j in jobs(emulator, "default.tick") if condition(j)}
        # Runs that made a Job: a slot skipped under Forbid (a Job outlived a second) made none.
        made = [r for r in ended(instance, "default/tick") if r.job]
        newest = {r.job.name for r in sorted(made, key=lambda r: r.scheduled_at)[-2:] if r.job}
        return finished == newest

    # The Jobs left are exactly the two newest runs' (the others deleted).
    wait_for("only the two newest Jobs kept", kept_are_the_newest)


@pytest.mark.slow
def test_a_removed_tasks_finished_jobs_go_and_running_ones_finish(
    crontask: Callable[..., Crontask], emulator: Emulator, tmp_path: Path
) -> None:
    gate = Gate(tmp_path)
    instance = crontask()
    path = write_task(instance.tasks, "gone", gate.wait("echo bye"), successfulRunsHistoryLimit=5)
    write_task(instance.tasks, "stays", "true")  # so that removing one is no empty set
    instance.wait_log("task=default/gone")
    gate.open()
    trigger(instance, "default/gone")
    wait_for("a first run", lambda: ended(instance, "default/gone"), timeout=15)
    gate.path.unlink()
    trigger(instance, "default/gone")
    (running,) = wait_for("a live Job", lambda: live(emulator, "default.gone"))
    path.unlink()
    instance.wait_log("task removed")
    wait_for("only the running Job left", lambda: len(jobs(emulator, "default.gone")) == 1)
    assert jobs(emulator, "default.gone")[0]["metadata"]["name"] == running["metadata"]["name"]
    gate.open()
    wait_for("its run recorded", lambda: len(ended(instance, "default/gone")) == 2, timeout=15)
    assert {r.status for r in ended(instance, "default/gone")} == {RunStatus.SUCCEEDED}
    wait_for("then its Job deleted", lambda: not jobs(emulator, "default.gone"))


@pytest.mark.slow
def test_a_job_crontask_did_not_create_is_never_touched(
    crontask: Callable[..., Crontask], emulator: Emulator
) -> None:
    instance = crontask()
    write_task(
        instance.tasks, "mine", "true", failedRunsHistoryLimit=0, successfulRunsHistoryLimit=0
    )
    instance.wait_log("task=default/mine")
    # Someone else's Jobs: one named as crontask would name a slot's, one that merely looks ours.
    stranger = job_body("mine-1893456000", "exit 0")
    emulator.create(stranger)
    lookalike = job_body("mine-other", "exit 0")
    lookalike["metadata"]["annotations"] = {"crontask.dev/task": "default/mine"}
    emulator.create(lookalike)
    wait_for("both done", lambda: all(condition(j) for j in jobs(emulator)))

    run = trigger(instance, "default/mine")
    wait_for("the run to end", lambda: ended(instance, "default/mine"))
    wait_for("crontask's own Job cleaned up", lambda: not jobs(emulator, "default.mine"))
    names = {j["metadata"]["name"] for j in jobs(emulator)}
    assert names == {"mine-1893456000", "mine-other"}
    assert run["id"]


def test_job_tasks_need_a_connection(tmp_path: Any, crontask: Callable[..., Crontask]) -> None:
    from tests.e2e.conftest import Crontask as Plain

    tasks = tmp_path / "plain"
    tasks.mkdir()
    write_task(tasks, "needs-cluster", "true")
    (tasks / "other.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "crontask.dev/v1alpha1",
                "kind": "CronTask",
                "metadata": {"name": "other"},
                "spec": {"schedule": "0 0 1 1 *", "command": {"args": ["true"]}},
            }
        )
    )
    instance = Plain(tmp_path / "plain-run", tasks, [], {"KUBECONFIG": "/nonexistent"})
    (tmp_path / "plain-run").mkdir()
    instance.start()
    try:
        instance.wait_log("has no Kubernetes connection")
        assert (
            "needs-cluster.yaml:1:1: spec.job: this crontask has no Kubernetes connection"
            in instance.log()
        )
        added = [line for line in instance.log().splitlines() if "task added" in line]
        assert any("task=default/other" in line for line in added)
        assert not any("needs-cluster" in line for line in added)  # not scheduled
    finally:
        instance.stop()


@pytest.mark.slow
def test_a_task_whose_jobs_go_to_another_namespace_is_cleaned_up_there_after_a_restart(
    crontask: Callable[..., Crontask], emulator: Emulator
) -> None:
    # A Job is a task's only where the task's Jobs go; for a folder task with its own
    # spec.job.namespace, the runner learns where from each pass, before it cleans up.
    emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "batch"}})
    instance = crontask()
    batch = {"namespace": "batch"}
    write_task(instance.tasks, "away", "true", job=dict(batch), successfulRunsHistoryLimit=5)
    instance.wait_log("task=default/away")
    trigger(instance, "default/away")
    wait_for("a first run", lambda: len(ended(instance, "default/away")) == 1)
    trigger(instance, "default/away")
    wait_for("a second run", lambda: len(ended(instance, "default/away")) == 2)
    assert instance.stop() == 0
    write_task(instance.tasks, "away", "true", job=dict(batch), successfulRunsHistoryLimit=1)

    instance.start()
    wait_for("one Job kept", lambda: len(jobs(emulator, "default.away")) == 1)
    (job,) = jobs(emulator, "default.away")
    assert job["metadata"]["namespace"] == "batch"
    newest = max(ended(instance, "default/away"), key=lambda r: r.scheduled_at)
    assert newest.job is not None
    assert job["metadata"]["name"] == newest.job.name
