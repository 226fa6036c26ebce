"""A Job crontask deleted at its timeout while a finalizer holds it (Terminating), its pod still
running, holds the task's slot: Forbid skips, Replace starts no Job beside it, until it is gone.
A run whose retry's Job runs beside its held one is still running, as Forbid's skip says."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from reconciler.core.runs import RunRecord, RunStatus
from tests.helpers import wait_for
from tests.jobs.conftest import Crontask, Gate, jobs, write_task
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import Kubectl

HOLD = "example.com/hold"  # e.g. a backup operator's


@pytest.mark.slow
def test_forbid_skips_while_a_deleted_job_is_held(
    crontask: Callable[..., Crontask], emulator: Emulator, kubectl: Kubectl
) -> None:
    instance = crontask()
    gate, name = held_first_job(instance, emulator, kubectl)
    (timed_out,) = wait_for(
        "the run timed out",
        lambda: [r for r in instance.runs("default/held") if r.status is RunStatus.TIMED_OUT],
        timeout=60,
    )
    assert timed_out.job is not None
    assert timed_out.job.name == name
    (job,) = wait_for(
        "the Job Terminating",
        lambda: [
            j for j in jobs(emulator, "default.held") if j["metadata"].get("deletionTimestamp")
        ],
    )
    assert job["status"]["active"] == 1  # its pod still runs: the finalizer holds the Job
    since = timed_out.finished_at
    assert since is not None
    seen = len(emulator.request_log)

    def skips() -> list[RunRecord]:
        runs = instance.runs("default/held")
        return [r for r in runs if r.reason == "ConcurrencyForbid" and r.scheduled_at > since]

    wait_for("three slots skipped after the timeout", lambda: skips()[2:], timeout=15)
    skipped = skips()
    # Its delete was answered: not sent again at each slot it holds (it was, one a slot).
    deletes = [
        r
        for r in emulator.request_log[seen:]
        if r.method == "DELETE" and r.path.endswith(f"/jobs/{name}")
    ]
    assert len(deletes) <= 1, [r.path for r in deletes]
    assert [j["metadata"]["name"] for j in jobs(emulator, "default.held")] == [name]
    # Said as it is, so that an operator looks at what holds the Job, not at a slow run.
    for skip in skipped:
        assert skip.message is not None
        assert skip.message.startswith(f"previous run's Job is being deleted ({timed_out.id})")
        assert "Terminating" in skip.message
        assert "finalizer" in skip.message
        assert "still running" not in skip.message
    # The finalizer lifted, the Job goes (its pod with it): the next slot runs.
    kubectl("patch", "job", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    wait_for(
        "a second Job once the first is gone",
        lambda: [j for j in jobs(emulator, "default.held") if j["metadata"]["name"] != name],
        timeout=15,
    )
    gate.open()


@pytest.mark.slow
def test_replace_starts_no_job_beside_a_deleted_job_that_is_held(
    crontask: Callable[..., Crontask], emulator: Emulator, kubectl: Kubectl
) -> None:
    instance = crontask()
    gate = Gate(instance.tasks.parent)
    write_task(
        instance.tasks,
        "swap",
        gate.wait(),
        schedule="*/2 * * * * *",
        concurrencyPolicy="Replace",
        timeoutSeconds=1,
        job={"spec": {"activeDeadlineSeconds": 600}},
    )
    (first,) = wait_for("the first Job", lambda: jobs(emulator, "default.swap"))
    name = first["metadata"]["name"]
    kubectl(
        "patch", "job", name, "--type=merge", "-p", f'{{"metadata":{{"finalizers":["{HOLD}"]}}}}'
    )
    # The next slot replaces the first run: its delete is answered, the finalizer holds the Job.
    wait_for(
        "the Job Terminating",
        lambda: [
            j for j in jobs(emulator, "default.swap") if j["metadata"].get("deletionTimestamp")
        ],
    )
    blocked = wait_for(
        "two slots blocked",
        lambda: [r for r in instance.runs("default/swap") if r.reason == "ReplaceBlocked"][1:],
        timeout=15,
    )
    assert [j["metadata"]["name"] for j in jobs(emulator, "default.swap")] == [name]
    assert all(name in (r.message or "") and "finalizer" in (r.message or "") for r in blocked)
    kubectl("patch", "job", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    wait_for(
        "a second Job once the first is gone",
        lambda: [j for j in jobs(emulator, "default.swap") if j["metadata"]["name"] != name],
        timeout=15,
    )
    gate.open()


def held_first_job(
    instance: Crontask, emulator: Emulator, kubectl: Kubectl, **spec: Any
) -> tuple[Gate, str]:
    """The task ``held`` (and ``spec``), every 2 s, its Jobs waiting for the gate returned; its
    first Job held by a finalizer once it is deleted: its name."""
    gate = Gate(instance.tasks.parent)
    # timeoutSeconds 1 with a longer activeDeadlineSeconds: crontask's backstop deletes the
    # Job (timeoutSeconds + DEADLINE_MARGIN after its creation), not the Job controller.
    write_task(
        instance.tasks,
        "held",
        gate.wait(),
        schedule="*/2 * * * * *",
        timeoutSeconds=1,
        job={"spec": {"activeDeadlineSeconds": 600}},
        **spec,
    )
    (first,) = wait_for("the first Job", lambda: jobs(emulator, "default.held"))
    name = str(first["metadata"]["name"])
    kubectl(
        "patch", "job", name, "--type=merge", "-p", f'{{"metadata":{{"finalizers":["{HOLD}"]}}}}'
    )
    return gate, name


@pytest.mark.slow
def test_forbid_says_the_retry_runs_beside_the_held_job(
    crontask: Callable[..., Crontask], emulator: Emulator, kubectl: Kubectl
) -> None:
    """A run whose timed-out attempt's Job the finalizer holds retries: its next attempt's Job
    runs beside the held one, both the same run's. A slot turned away meanwhile is held by the
    attempt that runs: it said "previous run's Job is being deleted", from the held Job of the
    attempt before, and an operator looked at the finalizer of a Job the run was done with."""
    instance = crontask()
    gate, name = held_first_job(
        instance, emulator, kubectl, retry={"limit": 1, "backoffSeconds": 0}
    )

    def retried() -> list[dict[str, Any]]:
        found = jobs(emulator, "default.held")
        held = [j for j in found if j["metadata"]["name"] == name]
        if not held or not held[0]["metadata"].get("deletionTimestamp"):
            return []
        return [j for j in found if j["metadata"]["name"] != name]

    (second,) = wait_for("the retry's Job beside the held one", retried, timeout=60)
    seen = {r.id for r in instance.runs("default/held")}

    def skips() -> list[RunRecord]:
        runs = instance.runs("default/held")
        return [r for r in runs if r.reason == "ConcurrencyForbid" and r.id not in seen]

    try:
        skipped = wait_for("two slots turned away", lambda: skips()[1:], timeout=15)
        assert [j["metadata"]["name"] for j in retried()] == [second["metadata"]["name"]]
    finally:
        gate.open()
        kubectl("patch", "job", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    for skip in skipped:
        assert skip.message is not None
        assert skip.message.startswith("previous run still running ("), skip.message
        assert "being deleted" not in skip.message
