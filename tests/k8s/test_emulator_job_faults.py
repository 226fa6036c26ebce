"""Fault hooks of the kubelet double and the lifetime of its processes: an image that cannot
be pulled (the pod never starts), an OOM kill, graceful deletion (SIGTERM, then SIGKILL when
the grace period is over), a container that ends with its main process, and no process left
once the emulator stops."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.helpers import wait_for
from tests.k8s.emulator import ApiError, Emulator
from tests.k8s.emulator.fixtures import Kubectl, live_processes, serve
from tests.k8s.emulator.manifests import condition, container, finished, job, pod
from tests.k8s.support import WatchCollector, http_call

JOBS = "/apis/batch/v1/namespaces/default/jobs"
PODS = "/api/v1/namespaces/default/pods"
MISSING = "registry.invalid/missing:1"


@pytest.fixture
def emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    options = {"run_jobs": True, "max_grace_period": 0.5, **getattr(request, "param", {})}
    yield from serve(**options)


def pods_of(emulator: Emulator, name: str) -> list[dict[str, Any]]:
    return [p for p in emulator.objects("pods") if p["metadata"]["labels"].get("job-name") == name]


def the_job(emulator: Emulator, name: str) -> dict[str, Any]:
    (found,) = [j for j in emulator.objects("jobs") if j["metadata"]["name"] == name]
    return found


def waiting_reason(emulator: Emulator, name: str) -> str | None:
    for found in pods_of(emulator, name):
        for status in found["status"].get("containerStatuses") or []:
            reason = status["state"].get("waiting", {}).get("reason")
            if reason:
                return str(reason)
    return None


def running_pid(emulator: Emulator, pod_name: str) -> int:
    def printed() -> int | None:
        try:
            first = emulator.pod_log(pod_name).split("\n")[0]
        except ApiError:
            return None
        return int(first) if first.isdigit() else None

    return wait_for(f"{pod_name} to print its pid", printed, 5)


def test_an_image_that_cannot_be_pulled_keeps_the_pod_pending(
    emulator: Emulator, kubectl: Kubectl
) -> None:
    emulator.inject_image_pull_failure(MISSING)
    body = job("stuck", containers=[{**container("echo ran"), "image": MISSING}])
    http_call(emulator, "POST", JOBS, body)
    assert wait_for(
        "ImagePullBackOff", lambda: waiting_reason(emulator, "stuck") == "ImagePullBackOff", 5
    )
    (stuck,) = pods_of(emulator, "stuck")
    assert stuck["status"]["phase"] == "Pending"
    (main,) = stuck["status"]["containerStatuses"]
    assert main["state"]["waiting"]["message"] == f'Back-off pulling image "{MISSING}"'
    status = the_job(emulator, "stuck")["status"]
    assert (status["active"], status["ready"], finished(the_job(emulator, "stuck"))) == (1, 0, None)
    row = re.split(r"\s{2,}", kubectl("get", "pods", "--no-headers").strip())
    assert row[1:3] == ["0/1", "ImagePullBackOff"]
    code, _, body_ = http_call(emulator, "GET", f"{PODS}/{stuck['metadata']['name']}/log")
    assert code == 400
    assert body_["message"].endswith("is waiting to start: trying and failing to pull image")
    emulator.clear_image_pull_failure(MISSING)  # the registry is back: the pod starts
    wait_for("the Job to complete", lambda: finished(the_job(emulator, "stuck")), 5)
    assert emulator.pod_log(stuck["metadata"]["name"]) == "ran\n"


def test_a_pull_failure_is_seen_first_as_err_image_pull(emulator: Emulator) -> None:
    emulator.inject_image_pull_failure(MISSING)
    http_call(emulator, "POST", PODS, {**pod("p"), "spec": {
        "containers": [{**container("true"), "image": MISSING}]}})  # fmt: skip
    seen: list[str] = []

    def reasons() -> bool:
        (found,) = emulator.objects("pods")
        for status in found["status"].get("containerStatuses") or []:
            reason = status["state"].get("waiting", {}).get("reason")
            if reason and reason not in seen:
                seen.append(reason)
        return "ImagePullBackOff" in seen

    wait_for("ImagePullBackOff", reasons, 5)
    assert seen == ["ErrImagePull", "ImagePullBackOff"]
    events = {e["reason"] for e in emulator.objects("events")}
    assert {"Scheduled", "Failed"} <= events


def test_an_oom_kill_ends_the_container_with_137(emulator: Emulator, kubectl: Kubectl) -> None:
    http_call(emulator, "POST", JOBS, job("hungry", "echo $$; sleep 30", backoffLimit=0))
    wait_for("a pod", lambda: pods_of(emulator, "hungry"), 5)
    name = pods_of(emulator, "hungry")[0]["metadata"]["name"]
    pid = running_pid(emulator, name)
    emulator.oom_kill(name)
    wait_for("the Job to fail", lambda: finished(the_job(emulator, "hungry")), 5)
    failed = condition(the_job(emulator, "hungry"), "Failed")
    assert failed is not None
    assert failed["reason"] == "BackoffLimitExceeded"
    (killed,) = pods_of(emulator, "hungry")
    assert killed["status"]["phase"] == "Failed"
    ended = killed["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (ended["exitCode"], ended["reason"]) == (137, "OOMKilled")
    assert live_processes([pid]) == []
    assert re.split(r"\s{2,}", kubectl("get", "pods", "--no-headers").strip())[2] == "OOMKilled"


def test_hooks_say_what_is_wrong(emulator: Emulator) -> None:
    with pytest.raises(LookupError):
        emulator.oom_kill("nobody")
    with Emulator() as plain, pytest.raises(RuntimeError, match="run_jobs"):
        plain.oom_kill("nobody")


def test_deletion_sends_sigterm_and_the_pod_reports_it(
    emulator: Emulator, k8s_api_client: Any
) -> None:
    http_call(emulator, "POST", PODS, pod("p", "echo $$; sleep 30", restartPolicy="Never"))
    pid = running_pid(emulator, "p")
    core: Any = client.CoreV1Api(k8s_api_client)
    start = core.read_namespaced_pod("p", "default").metadata.resource_version
    watch = WatchCollector(core.list_namespaced_pod, "default", resource_version=start).start()
    try:
        emulator.wait_for_watches(1, "pods")
        http_call(emulator, "DELETE", f"{PODS}/p")
        events = watch.take_until(lambda e: e["type"] == "DELETED")
    finally:
        watch.stop()
    # The kubelet may still be writing the Running status when the watch opens: the deletion
    # is the first event that carries a deletionTimestamp, and every event from it on does.
    marked = [e["object"].metadata.deletion_timestamp is not None for e in events]
    first = marked.index(True)
    assert all(marked[first:])
    assert events[first]["type"] == "MODIFIED"
    assert all(e["type"] == "MODIFIED" for e in events[:first])
    last = events[-2]["object"]  # the kubelet's final status before the removal
    assert last.status.phase == "Failed"
    ended = last.status.container_statuses[0].state.terminated
    assert (ended.exit_code, ended.reason) == (143, "Error")  # 128 + SIGTERM
    assert live_processes([pid]) == []


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace_period(
    emulator: Emulator,
) -> None:
    script = "trap '' TERM; echo $$; while :; do sleep 0.05; done"
    http_call(emulator, "POST", PODS, pod("stubborn", script, restartPolicy="Never"))
    pid = running_pid(emulator, "stubborn")
    began = time.monotonic()
    http_call(emulator, "DELETE", f"{PODS}/stubborn")
    (terminating,) = emulator.objects("pods")
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == 30  # capped at 0.5 here
    wait_for("the pod to be gone", lambda: not emulator.objects("pods"), 5)
    assert time.monotonic() - began >= 0.5
    assert live_processes([pid]) == []


def test_a_container_ends_with_its_main_process(emulator: Emulator) -> None:
    """What the main process leaves behind is killed with the container, as a runtime does;
    the Job does not wait for it."""
    began = time.monotonic()
    http_call(emulator, "POST", JOBS, job("quick", "(sleep 30; echo late) & echo $$; echo done"))
    wait_for("the Job to complete", lambda: finished(the_job(emulator, "quick")), 5)
    assert time.monotonic() - began < 5
    (ran,) = pods_of(emulator, "quick")
    lines = emulator.pod_log(ran["metadata"]["name"]).split()
    assert lines[1] == "done"
    assert live_processes([int(lines[0])]) == []


def test_stop_kills_every_process() -> None:
    emu = Emulator(run_jobs=True)
    emu.start()
    try:
        script = "trap '' TERM; sleep 30 & sleep 30 & echo $$; wait"
        for name in ("a", "b"):
            http_call(emu, "POST", JOBS, job(name, script))
        wait_for("two running containers", lambda: len(emu.process_groups()) == 2, 5)
        groups = emu.process_groups()
        # A group exists once its shell does; the sleeps come when the shell gets to them.
        wait_for("two shells, four sleeps", lambda: len(live_processes(groups)) == 6, 5)
    finally:
        began = time.monotonic()
        emu.stop()
    assert time.monotonic() - began < 5
    assert live_processes(groups) == []
    assert emu.process_groups() == []
    assert not emu.server_errors


@pytest.mark.parametrize("emulator", [{"max_pods": 1}], indirect=True)
def test_a_full_node_leaves_pods_pending_until_there_is_room(emulator: Emulator) -> None:
    http_call(emulator, "POST", PODS, pod("first", "sleep 0.5", restartPolicy="Never"))
    wait_for("first to run", emulator.process_groups, 5)
    http_call(emulator, "POST", PODS, pod("second", "echo second", restartPolicy="Never"))

    def second() -> dict[str, Any]:
        return next(p for p in emulator.objects("pods") if p["metadata"]["name"] == "second")

    def unschedulable() -> dict[str, Any] | None:
        found = second()
        return found if found["status"].get("conditions") else None

    (scheduled,) = wait_for("second to be unschedulable", unschedulable, 5)["status"]["conditions"]
    assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")
    assert scheduled["message"] == "0/1 nodes are available: 1 Too many pods."
    assert "nodeName" not in second()["spec"]
    wait_for("second to run once first has ended",
             lambda: second()["status"].get("phase") == "Succeeded", 5)  # fmt: skip


@pytest.mark.parametrize("emulator", [{"max_grace_period": 2.0}], indirect=True)
@pytest.mark.parametrize(("policy", "overlap"), [("TerminatingOrFailed", True), ("Failed", False)])
def test_pod_replacement_policy(
    emulator: Emulator, k8s_api_client: Any, policy: str, overlap: bool
) -> None:
    """A deleted pod is replaced while it terminates (TerminatingOrFailed, the default), or
    once it is gone (Failed). Its process ignores SIGTERM, so it terminates for 2 s."""
    script = "trap '' TERM; echo $$; while :; do sleep 0.05; done"
    http_call(emulator, "POST", JOBS, job("r", script, podReplacementPolicy=policy, backoffLimit=3))
    wait_for("a pod", lambda: pods_of(emulator, "r"), 5)
    first = pods_of(emulator, "r")[0]["metadata"]["name"]
    running_pid(emulator, first)
    core: Any = client.CoreV1Api(k8s_api_client)
    start = emulator.resource_version
    watch = WatchCollector(core.list_namespaced_pod, "default", resource_version=start).start()
    try:
        emulator.wait_for_watches(1, "pods")
        http_call(emulator, "DELETE", f"{PODS}/{first}")
        seen: list[tuple[str, str]] = []

        def both(event: dict[str, Any]) -> bool:
            seen.append((event["type"], event["object"].metadata.name))
            return ("DELETED", first) in seen and any(
                kind == "ADDED" and name != first for kind, name in seen
            )

        watch.take_until(both, timeout=10)
    finally:
        watch.stop()
    added = next(i for i, (kind, name) in enumerate(seen) if kind == "ADDED" and name != first)
    assert (added < seen.index(("DELETED", first))) is overlap
