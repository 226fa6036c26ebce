"""A failed run of a Job of several containers tells of the container that failed: its exit
code and its log tail, the main container's (the first, or the one the template's
``kubectl.kubernetes.io/default-container`` annotation names) having exited 0 or never run (an
init container failed before it). Before, such a run was recorded failed with exit code 0 and
the log of the container that succeeded. ``crontask validate`` warns of an annotation that
names none of the template's containers (crontask keeps the first one's log, as ``kubectl
logs`` does)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config

from reconciler.core.job_pods import story_container
from reconciler.core.jobs import main_container, outcome_of
from reconciler.core.runs import RunStatus
from reconciler.sources.kubernetes_jobs import JobWatch
from reconciler.store import MemoryRunStore
from tests.jobs.test_create_unanswered import dispatcher
from tests.jobs.test_job_runner import KEY, job_task, until
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import serve


def container(name: str, script: str) -> dict[str, Any]:
    return {"name": name, "image": "busybox", "command": ["sh", "-c", script]}


TWO = [container("a", "echo from-a; exit 0"), container("b", "echo from-b; exit 6")]


@pytest.fixture
def running_emulator() -> Iterator[Emulator]:
    yield from serve(run_jobs=True, pod_backoff=0.05, max_grace_period=0.5)


@pytest.mark.parametrize(
    ("pod", "annotations", "told"),
    [
        ({"containers": TWO}, {}, (6, "from-b\n", "(container b: exit code 6 Error)", "b", "a")),
        (  # the annotation names the container that succeeded: the same
            {"containers": TWO[::-1]},
            {"kubectl.kubernetes.io/default-container": "a"},
            (6, "from-b\n", "(container b: exit code 6 Error)", "b", "a"),
        ),
    ],
    ids=["first-succeeded", "default-container-succeeded"],
)
def test_the_failed_container_tells_the_failed_run(
    running_emulator: Emulator,
    tmp_path: Path,
    pod: dict[str, Any],
    annotations: dict[str, str],
    told: tuple[int, str, str, str, str],
) -> None:
    code, output, said, failed, main = told
    kubeconfig = running_emulator.write_kubeconfig(tmp_path / "kubeconfig")
    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    store = MemoryRunStore()
    template: dict[str, Any] = {"spec": pod}
    if annotations:
        template["metadata"] = {"annotations": annotations}
    task = job_task(job={"spec": {"backoffLimit": 0, "template": template}})

    async def main_() -> None:
        watch = JobWatch(api, ["default"])
        assert await asyncio.to_thread(watch.start, asyncio.get_running_loop(), 10)
        try:
            d = dispatcher(watch, store)
            fired = d.fire(task, datetime.now(UTC).replace(microsecond=0))
            await until(lambda: not d.active(KEY), timeout=20)
            [ended] = store.attempts(fired.id)
            assert (ended.status, ended.exit_code, ended.output) == (RunStatus.FAILED, code, output)
            message = ended.message or ""
            assert said in message
            assert message.endswith(
                f"; the exit code and log are container {failed}'s ({main} did not fail)"
            )
            await d.shutdown(0)
        finally:
            watch.stop()

    try:
        asyncio.run(main_())
    finally:
        api.close()


def _pod(**states: dict[str, Any]) -> dict[str, Any]:
    statuses = [{"name": name, "state": state} for name, state in states.items()]
    return {"status": {"containerStatuses": statuses}}


def test_a_sidecar_stopped_at_the_end_or_a_main_that_failed_is_not_passed_over() -> None:
    sidecar = {"name": "proxy", "state": {"terminated": {"exitCode": 143}}}
    pod = _pod(a={"terminated": {"exitCode": 0}}, b={"terminated": {"exitCode": 6}})
    pod["spec"] = {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}]}
    pod["status"]["initContainerStatuses"] = [sidecar]
    assert story_container(pod, "Failed", "a") == "b"
    assert story_container(pod, "Complete", "a") == "a"  # a success is the main container's
    assert story_container(pod, None, "a") == "a"  # undecided (a stop): the main container's
    both = _pod(a={"terminated": {"exitCode": 1}}, b={"terminated": {"exitCode": 6}})
    assert story_container(both, "Failed", "a") == "a"
    none = _pod(a={"terminated": {"exitCode": 0}}, b={"terminated": {"exitCode": 0}})
    assert story_container(none, "Failed", "a") == "a"


def test_an_init_container_that_failed_tells_the_run() -> None:
    """(The emulator runs no init container: the pod as the kubelet leaves it.)"""
    pod = _pod(a={"waiting": {"reason": "PodInitializing"}})
    pod["metadata"] = {"name": "j-abcde"}
    init = {"name": "i", "state": {"terminated": {"exitCode": 9, "reason": "Error"}}}
    pod["status"]["initContainerStatuses"] = [init]
    job = {
        "metadata": {"name": "j"},
        "spec": {"template": {"spec": {"containers": [{"name": "a"}]}}},
        "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "X"}]},
    }
    ended = outcome_of(job, pod, main=main_container(job))
    assert (ended.status, ended.exit_code) == (RunStatus.FAILED, 9)
    assert ended.message == (
        "Job j failed: X (container i: exit code 9 Error; container a: PodInitializing); "
        "the exit code and log are container i's (a did not fail)"
    )


def _ended(code: object, at: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return {"terminated": {"exitCode": code, "reason": "Error", "finishedAt": at}}


def _failed_job(
    reason: str = "BackoffLimitExceeded", names: tuple[str, ...] = ("a", "b")
) -> dict[str, Any]:
    return {
        "metadata": {"name": "j"},
        "spec": {"template": {"spec": {"containers": [{"name": n} for n in names]}}},
        "status": {"conditions": [{"type": "Failed", "status": "True", "reason": reason}]},
    }


def test_a_main_container_that_failed_before_a_restart_tells_the_run() -> None:
    """``restartPolicy: OnFailure``: the main container failed, and waits to run again
    (``CrashLoopBackOff``) as the Job fails; b was killed as the pod ended. Its exit code is
    the one it had (before: b's 143, "a did not fail")."""
    a = {"waiting": {"reason": "CrashLoopBackOff"}}
    pod = _pod(a=a, b=_ended(143))
    pod["status"]["containerStatuses"][0]["lastState"] = _ended(1)
    assert story_container(pod, "Failed", "a") == "a"
    ended = outcome_of(_failed_job(), pod, main="a")
    assert ended.exit_code == 1
    assert "did not fail" not in ended.message
    init = {"name": "i", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
    init["lastState"] = _ended(9)  # an init container that failed, to be run again
    pod = _pod(a={"waiting": {"reason": "PodInitializing"}})
    pod["status"]["initContainerStatuses"] = [init]
    assert story_container(pod, "Failed", "a") == "i"


def test_past_its_deadline_the_main_container_tells_unless_it_exited_0() -> None:
    """Out of time, main still terminating or killed: its story, not that of a container
    that ended first as it was stopped (b, 143)."""
    for main in [{"running": {}}, _ended(137), {"waiting": {"reason": "PodInitializing"}}]:
        pod = _pod(a=main, b=_ended(143))
        assert story_container(pod, "Failed", "a", "DeadlineExceeded") == "a", main
    pod = _pod(a=_ended(0), b=_ended(137))  # a sidecar kept the pod running past it
    assert story_container(pod, "Failed", "a", "DeadlineExceeded") == "b"
    pod = _pod(a={"running": {}}, b=_ended(6))  # not out of time: a runs, b failed
    assert story_container(pod, "Failed", "a") == "a"


def test_of_the_failed_containers_the_one_that_finished_first_tells() -> None:
    """The kubelet lists containers by name: ``uploader`` failed (2) as ``worker``, which
    failed first (1), was gone; ``worker`` tells."""
    pod = _pod(
        main=_ended(0),
        uploader=_ended(2, "2026-01-01T00:00:09Z"),
        worker=_ended(1, "2026-01-01T00:00:03Z"),
    )
    assert story_container(pod, "Failed", "main") == "worker"
    ended = outcome_of(_failed_job(names=("main", "worker", "uploader")), pod, main="main")
    assert ended.exit_code == 1


@pytest.mark.parametrize(
    "now",
    [{"running": {}}, _ended(137, "2026-01-01T00:00:09Z")],
    ids=["running-again", "killed-later"],
)
def test_a_container_that_failed_before_a_restart_tells_its_first_exit_code(
    now: dict[str, Any],
) -> None:
    """``worker`` failed (1), was restarted, and runs again, or was killed later (137) as
    the pod ended: it tells the run, and with the exit code of its failure (before: None, or
    137, the state now, while the choice had looked at ``lastState``)."""
    pod = _pod(main=_ended(0), worker=now)
    pod["status"]["containerStatuses"][1]["lastState"] = _ended(1, "2026-01-01T00:00:03Z")
    assert story_container(pod, "Failed", "main") == "worker"
    ended = outcome_of(_failed_job(names=("main", "worker")), pod, main="main")
    assert ended.exit_code == 1
    assert "container worker: exit code 1" in ended.message


def test_an_exit_code_of_true_is_none() -> None:
    """JSON ``true`` (Python's bool is an int) is no exit code, in the run nor its story."""
    pod = _pod(a=_ended(True), b=_ended(0))
    ended = outcome_of(_failed_job(), pod, main="a")
    assert ended.exit_code is None
    assert [c.exit_code for c in ended.details.containers] == [None, 0]


TASK = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {{name: {name}}}\n"
    'spec:\n  schedule: "0 0 1 1 *"\n  job:\n    spec:\n      template:\n'
    "        metadata: {{annotations: {{kubectl.kubernetes.io/default-container: {chosen}}}}}\n"
    "        spec:\n          containers:\n"
    "            - {{name: a, image: busybox}}\n"
    "            - {{name: b, image: busybox}}\n"
)


def test_validate_warns_of_a_default_container_that_is_none_of_the_template(
    tmp_path: Path,
) -> None:
    (tmp_path / "nope.yaml").write_text(TASK.format(name="nope", chosen="nope"))
    (tmp_path / "fine.yaml").write_text(TASK.format(name="fine", chosen="b"))
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{tmp_path / 'nope.yaml'}:1:1: warning: default/nope: the pod template's annotation "
        "kubectl.kubernetes.io/default-container names 'nope', none of its containers: "
        "crontask keeps the log of its first container, a, as kubectl logs does",
        "ok: 2 files, 2 tasks, 1 warning",
    ]
