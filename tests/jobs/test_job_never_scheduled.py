"""A Job whose pod the cluster never ran is not recorded as one that ran too long: when its
deadline ends it while none of its pods was ever scheduled (``PodScheduled=False``,
``Unschedulable``), or while its pod is stuck Pending for another reason the pod tells (an
image that cannot be pulled), the run's reason and message say so. It stays ``timedOut`` (a
retry treats it as it treats any timeout). The real ``crontask run`` against the emulator,
whose node is full (``max_pods``) or cannot pull an image."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from reconciler.core.runs import RunRecord, RunStatus
from tests.helpers import wait_for
from tests.jobs.conftest import Crontask, Gate, trigger, write_task
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import serve

MISSING = "registry.invalid/missing:1"


@pytest.fixture
def emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    options = {"run_jobs": True, "pod_backoff": 0.05, "max_grace_period": 0.5}
    yield from serve(**options, **getattr(request, "param", {}))


def ended(instance: Crontask, task: str) -> RunRecord:
    def finished() -> RunRecord | None:
        done = [r for r in instance.runs(task) if r.status.finished]
        return done[0] if done else None

    return wait_for(f"{task} to end", finished, 30)


@pytest.mark.slow
@pytest.mark.parametrize("emulator", [{"max_pods": 0}], indirect=True)
def test_a_job_whose_pod_was_never_scheduled_says_so(
    crontask: Callable[..., Crontask], emulator: Emulator
) -> None:
    instance = crontask()
    write_task(instance.tasks, "nowhere", "echo ran", timeoutSeconds=2)
    instance.wait_log("task=default/nowhere")
    trigger(instance, "default/nowhere")

    run = ended(instance, "default/nowhere")
    assert (run.status, run.reason) == (RunStatus.TIMED_OUT, "Unschedulable")
    assert run.message is not None
    assert "was never scheduled" in run.message
    assert "0/1 nodes are available: 1 Too many pods." in run.message
    assert run.output == ""
    assert run.job is not None
    assert run.job.node is None


@pytest.mark.slow
def test_a_job_whose_image_cannot_be_pulled_says_so(
    crontask: Callable[..., Crontask], emulator: Emulator
) -> None:
    emulator.inject_image_pull_failure("busybox")
    instance = crontask()
    write_task(instance.tasks, "pull", "echo ran", timeoutSeconds=2)
    instance.wait_log("task=default/pull")
    trigger(instance, "default/pull")

    run = ended(instance, "default/pull")
    assert run.status is RunStatus.TIMED_OUT
    assert run.reason in ("ErrImagePull", "ImagePullBackOff")
    assert run.message is not None
    assert "never started" in run.message
    assert "busybox" in run.message


@pytest.mark.slow  # a crontask and a Job past its deadline: 7-12 s, 21 s on busy cores
def test_a_job_that_ran_too_long_is_still_a_deadline(
    crontask: Callable[..., Crontask], emulator: Emulator
) -> None:
    instance = crontask()
    gate = Gate(instance.tasks.parent)  # never opened: the container runs past its deadline
    write_task(instance.tasks, "slow", gate.wait(), timeoutSeconds=2)
    instance.wait_log("task=default/slow")
    trigger(instance, "default/slow")

    run = ended(instance, "default/slow")
    assert (run.status, run.reason) == (RunStatus.TIMED_OUT, "DeadlineExceeded")
    assert run.message is not None
    assert "never" not in run.message
