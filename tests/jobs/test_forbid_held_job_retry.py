"""A run whose timed-out attempt's Job a finalizer holds (Terminating, its pod still running)
retries: its next attempt's Job runs beside the held one, both the same run's. A slot that
``Forbid`` turns away meanwhile is held by that run's attempt that runs, not by a Job being
deleted: it said "previous run's Job is being deleted", from the held Job of the attempt
before, and an operator looked at the finalizer of a Job the run was done with.
The real program against the cluster emulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from reconciler.core.runs import RunRecord
from tests.helpers import wait_for
from tests.jobs.conftest import Crontask, Gate, jobs, write_task
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import Kubectl

HOLD = "example.com/hold"  # e.g. a backup operator's


@pytest.mark.slow
def test_forbid_says_the_retry_runs_beside_the_held_job(
    crontask: Callable[..., Crontask], emulator: Emulator, kubectl: Kubectl
) -> None:
    instance = crontask()
    gate = Gate(instance.tasks.parent)
    # As in test_forbid_held_job: crontask's backstop deletes the first attempt's Job.
    write_task(
        instance.tasks,
        "held",
        gate.wait(),
        schedule="*/2 * * * * *",
        timeoutSeconds=1,
        retry={"limit": 1, "backoffSeconds": 0},
        job={"spec": {"activeDeadlineSeconds": 600}},
    )
    (first,) = wait_for("the first Job", lambda: jobs(emulator, "default.held"))
    name = first["metadata"]["name"]
    kubectl(
        "patch", "job", name, "--type=merge", "-p", f'{{"metadata":{{"finalizers":["{HOLD}"]}}}}'
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
