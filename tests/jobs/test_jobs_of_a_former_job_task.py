"""A task whose ``job`` is replaced by a ``command`` keeps its name and its run history, and
its runs make no Job any more: the history limits still apply to the Jobs its earlier runs
made ("successfulRunsHistoryLimit and failedRunsHistoryLimit apply to Jobs too"). They were
kept for good, as the clean-up counted only the runs that made a Job: the newer runs without
one never pushed them past the limits. Its finished Jobs go once the run history no longer
keeps their runs (pruned by the same limits, or by age); one whose run it keeps stays."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import yaml

from tests.helpers import wait_for
from tests.jobs.conftest import Crontask, condition, jobs, trigger, write_task
from tests.jobs.test_jobs_left_in_a_former_namespace import settled
from tests.jobs.test_lifecycle import ended
from tests.k8s.emulator import Emulator

KEY = "default/switched"


def write_command_task(instance: Crontask, name: str, limit: int) -> None:
    document = {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": name},
        "spec": {
            "schedule": "0 0 1 1 *",
            "successfulRunsHistoryLimit": limit,
            "command": {"args": ["true"]},
        },
    }
    (instance.tasks / f"{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def resynced(instance: Crontask) -> int:
    return sum(1 for line in instance.log().splitlines() if "resync=True" in line)


@pytest.mark.slow  # 8 s: runs of a job task, then of its command, on the emulator
def test_the_jobs_of_a_task_that_no_longer_runs_jobs_go_with_their_runs_history(
    crontask: Callable[..., Crontask], emulator: Emulator
) -> None:
    instance = crontask("--housekeeping-interval", "1s")
    write_task(instance.tasks, "switched", "true")
    settled(instance, "task added", KEY)
    trigger(instance, KEY)
    wait_for("the Job's run", lambda: len(ended(instance, KEY)) == 1)
    (job,) = jobs(emulator, "default.switched")
    assert condition(job) == "Complete"
    # Its Job's run is the newest of one allowed: the Job stays while the history keeps it.
    write_command_task(instance, "switched", limit=2)
    settled(instance, "task updated", KEY)
    trigger(instance, KEY)
    wait_for("the command's run", lambda: len(ended(instance, KEY)) == 2)
    resyncs = resynced(instance)
    wait_for("two resyncs, each with its clean-up", lambda: resynced(instance) >= resyncs + 2)
    assert [j["metadata"]["uid"] for j in jobs(emulator, "default.switched")] == [
        job["metadata"]["uid"]
    ]
    write_command_task(instance, "switched", limit=1)
    settled(instance, "task updated", KEY, times=2)
    # The housekeeping keeps the newest succeeded run, the command's: the Job's run goes, and
    # its Job with it at the next clean-up (a resync, every 2 s here).
    wait_for("the Job's run pruned", lambda: len(ended(instance, KEY)) == 1)
    wait_for("the Job deleted", lambda: jobs(emulator, "default.switched") == [])
