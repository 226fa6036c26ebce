"""Timeouts, retries and the concurrency policies, decided on the Jobs the cluster runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from reconciler.core.runs import RunRecord, RunStatus
from tests.deploy.test_manifests import CRONTASK_RULES
from tests.helpers import wait_for
from tests.jobs.conftest import Crontask, api_calls, condition, jobs, trigger, write_task
from tests.k8s.emulator import Emulator


def ended(instance: Crontask, task: str) -> list[RunRecord]:
    return [r for r in instance.runs(task) if r.status.finished]


def test_timeout_is_the_jobs_deadline(
    crontask: Callable[..., Crontask], emulator: Emulator
) -> None:
    instance = crontask()
    write_task(instance.tasks, "slow", "echo started; sleep 30", timeoutSeconds=1)
    instance.wait_log("task=default/slow")
    trigger(instance, "default/slow")
    (run,) = wait_for("the run to end", lambda: ended(instance, "default/slow"))
    assert (run.status, run.reason) == (RunStatus.TIMED_OUT, "DeadlineExceeded")
    (job,) = jobs(emulator, "default.slow")
    assert job["spec"]["activeDeadlineSeconds"] == 1  # the cluster stops it, not crontask
    assert condition(job) == "Failed"
    assert run.job is not None
    assert run.job.completed_at is None
    # The Job controller deletes the pods of a Job past its deadline: their log goes too, and
    # the record says so rather than pretending there was none.
    assert run.output == ""
    assert run.job.log_error


def test_a_retry_is_a_new_job_of_the_same_run(
    crontask: Callable[..., Crontask], emulator: Emulator
) -> None:
    instance = crontask()
    write_task(
        instance.tasks,
        "flaky",
        "echo try $CRONTASK_ATTEMPT; exit 1",
        retry={"limit": 1, "backoffSeconds": 0},
    )
    instance.wait_log("task=default/flaky")
    first = trigger(instance, "default/flaky")
    attempts = wait_for(
        "two attempts",
        lambda: (
            [r for r in ended(instance, "default/flaky") if r.id == first["id"]][1:]
            and ended(instance, "default/flaky")
        ),
    )
    attempts = sorted(attempts, key=lambda r: r.attempt)
    assert [(r.attempt, r.status, r.output) for r in attempts] == [
        (1, RunStatus.FAILED, "try 1\n"),
        (2, RunStatus.FAILED, "try 2\n"),
    ]
    names = sorted(j["metadata"]["name"] for j in jobs(emulator, "default.flaky"))
    assert [r.job.name for r in attempts if r.job] == names  # one Job per attempt
    assert names[1] == names[0] + "-2"


@pytest.mark.slow
def test_forbid_skips_while_the_job_runs(
    crontask: Callable[..., Crontask], emulator: Emulator
) -> None:
    instance = crontask()
    write_task(instance.tasks, "long", "sleep 2.5", schedule="* * * * * *")
    write_task(instance.tasks, "paused", "true", schedule="* * * * * *", suspend=True)

    def live() -> list[dict[str, Any]]:
        return [j for j in jobs(emulator, "default.long") if condition(j) is None]

    wait_for(
        "a skip",
        lambda: [r for r in instance.runs("default/long") if r.reason == "ConcurrencyForbid"],
    )
    assert len(live()) <= 1
    wait_for(
        "a second Job after the first ended",
        lambda: len(jobs(emulator, "default.long")) >= 2,
        timeout=15,
    )
    assert len(live()) <= 1
    runs = instance.runs("default/long")
    skips = [r for r in runs if r.reason == "ConcurrencyForbid"]
    assert skips
    assert all("still running" in (r.message or "") for r in skips)
    started = [r for r in runs if r.status is not RunStatus.SKIPPED]
    assert len(started) == len(jobs(emulator, "default.long"))  # one Job per run, no more
    assert jobs(emulator, "default.paused") == []  # suspended: no Jobs at all
    assert instance.runs("default/paused") == []


@pytest.mark.slow
def test_replace_deletes_the_running_job(
    crontask: Callable[..., Crontask], emulator: Emulator
) -> None:
    instance = crontask()
    write_task(
        instance.tasks,
        "swap",
        "echo working; sleep 30",
        schedule="*/2 * * * * *",
        concurrencyPolicy="Replace",
    )
    replaced = wait_for(
        "a replaced run",
        lambda: [r for r in ended(instance, "default/swap") if r.reason == "Replaced"],
        timeout=15,
    )[0]
    assert replaced.status is RunStatus.FAILED
    assert replaced.job is not None
    name = replaced.job.name
    assert f"Job {name} deleted" in (replaced.message or "")
    assert replaced.output == "working\n"  # the log is kept before the Job goes
    wait_for(
        "the replaced Job gone",
        lambda: name not in {j["metadata"]["name"] for j in jobs(emulator)},
    )
    # Background propagation: its pods go too (a Job's default would orphan them).
    wait_for(
        "its pods gone",
        lambda: (
            not [
                p for p in emulator.objects("pods") if p["metadata"]["name"].startswith(name + "-")
            ]
        ),
    )
    # Everything crontask asked of the API server is in the Role of deploy/rbac.yaml.
    granted = {(g, r, v) for (g, r), verbs in CRONTASK_RULES.items() for v in verbs}
    assert api_calls(emulator) <= granted, api_calls(emulator) - granted
    assert ("batch", "jobs", "delete") in api_calls(emulator)
    assert ("", "pods/log", "get") in api_calls(emulator)
    following = [r for r in instance.runs("default/swap") if r.status is RunStatus.RUNNING]
    assert following
    assert following[0].job is not None
