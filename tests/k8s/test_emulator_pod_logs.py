"""``pods/log`` of pods the kubelet double runs, from the Kubernetes API reference
(``PodLogOptions``: container, previous, tailLines, limitBytes, sinceSeconds, sinceTime,
timestamps, follow) and ``kubectl logs``. stdout and stderr are one stream, as in the
kubelet's log file."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.helpers import wait_for
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import Kubectl, serve
from tests.k8s.emulator.manifests import container, finished, job, pod
from tests.k8s.emulator.processes import LOG_LIMIT
from tests.k8s.support import error_body, http_call


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    yield from serve(run_jobs=True)


@pytest.fixture
def core(k8s_api_client: Any) -> Any:
    return client.CoreV1Api(k8s_api_client)


def run(emulator: Emulator, name: str, script: str = "", **kw: Any) -> str:
    """Create a Job, wait until it has finished, return its (first) pod's name."""
    http_call(emulator, "POST", "/apis/batch/v1/namespaces/default/jobs", job(name, script, **kw))

    def done() -> bool:
        return any(o["metadata"]["name"] == name and finished(o) for o in emulator.objects("jobs"))

    wait_for(f"Job {name}", done, 10)
    (pod,) = [p for p in emulator.objects("pods") if p["metadata"]["labels"]["job-name"] == name]
    return str(pod["metadata"]["name"])


def log(emulator: Emulator, pod: str, query: str = "") -> tuple[int, Any]:
    status, _, body = http_call(
        emulator, "GET", f"/api/v1/namespaces/default/pods/{pod}/log{query}", text=True
    )
    return status, body


def test_stdout_and_stderr_interleave_in_order(emulator: Emulator, core: Any) -> None:
    pod = run(emulator, "mixed", "echo a; echo b >&2; echo c; printf 'no newline'")
    assert core.read_namespaced_pod_log(pod, "default") == "a\nb\nc\nno newline"


def test_tail_lines_and_limit_bytes(emulator: Emulator, core: Any) -> None:
    pod = run(emulator, "count", "for i in 1 2 3 4 5; do echo $i; done")
    assert core.read_namespaced_pod_log(pod, "default", tail_lines=2) == "4\n5\n"
    assert log(emulator, pod, "?tailLines=0") == (200, "")
    assert core.read_namespaced_pod_log(pod, "default", limit_bytes=3) == "1\n2"
    assert log(emulator, pod, "?tailLines=2&limitBytes=3") == (200, "4\n5")


def test_timestamps_prefix_each_line(emulator: Emulator, core: Any) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    pod = run(emulator, "stamped", "echo one; echo two")
    lines = core.read_namespaced_pod_log(pod, "default", timestamps=True).splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["one", "two"]
    for line in lines:
        stamp = line.split(" ", 1)[0]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", stamp)
        assert datetime.fromisoformat(stamp.replace("Z", "+00:00")) >= before


def test_since_time_and_since_seconds(emulator: Emulator) -> None:
    pod = run(emulator, "since", "echo one")
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    earlier = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert log(emulator, pod, f"?sinceTime={later}") == (200, "")
    assert log(emulator, pod, f"?sinceTime={earlier}") == (200, "one\n")
    assert log(emulator, pod, "?sinceSeconds=3600") == (200, "one\n")


def test_invalid_options(emulator: Emulator) -> None:
    pod = run(emulator, "opts", "echo one")
    status, body = log(emulator, pod, "?tailLines=-1")
    assert (status, json.loads(body)["reason"]) == (422, "Invalid")
    assert json.loads(body)["details"]["causes"][0]["field"] == "tailLines"
    assert log(emulator, pod, "?limitBytes=lots")[0] == 400


def test_the_container_must_be_named_when_there_are_several(emulator: Emulator, core: Any) -> None:
    pod = run(emulator, "two", containers=[container("echo A", "a"), container("echo B", "b")])
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log(pod, "default")
    assert err.value.status == 400
    assert error_body(err.value)["message"] == (
        f"a container name must be specified for pod {pod}, choose one of: [a b]"
    )
    assert core.read_namespaced_pod_log(pod, "default", container="b") == "B\n"
    with pytest.raises(ApiException) as unknown:
        core.read_namespaced_pod_log(pod, "default", container="c")
    assert error_body(unknown.value)["message"] == f"container c is not valid for pod {pod}"


def test_previous_needs_a_terminated_earlier_run(emulator: Emulator, core: Any) -> None:
    pod = run(emulator, "single", "echo one")
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log(pod, "default", previous=True)
    assert error_body(err.value)["message"] == (
        f'previous terminated container "main" in pod "{pod}" not found'
    )


def test_a_log_keeps_its_last_bytes_only(emulator: Emulator, core: Any) -> None:
    pod = run(emulator, "big", "yes 0123456789 | head -c 5000000; echo end")
    text = core.read_namespaced_pod_log(pod, "default")
    assert LOG_LIMIT - 20 < len(text) <= LOG_LIMIT
    assert text.endswith("0123456789\n01234end\n")  # head cut a line: 5e6 % 11 == 5


def test_follow_streams_until_the_container_ends(emulator: Emulator, k8s_api_client: Any) -> None:
    http_call(emulator, "POST", "/apis/batch/v1/namespaces/default/jobs",
              job("tail", "echo one; sleep 30"))  # fmt: skip

    def pod_name() -> str | None:
        pods = [p for p in emulator.objects("pods") if p["status"].get("phase") == "Running"]
        return pods[0]["metadata"]["name"] if pods else None

    pod = wait_for("a running pod", pod_name, 5)
    url = urlsplit(emulator.url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        conn.request("GET", f"/api/v1/namespaces/default/pods/{pod}/log?follow=true")
        response = conn.getresponse()
        assert response.getheader("Transfer-Encoding") == "chunked"
        assert response.readline() == b"one\n"  # streamed while the process still runs
        client.BatchV1Api(k8s_api_client).delete_namespaced_job(
            "tail", "default", propagation_policy="Background"
        )
        assert response.read() == b""  # the stream ends with the container
    finally:
        conn.close()


def test_kubectl_logs_follow(emulator: Emulator, kubectl: Kubectl) -> None:
    http_call(emulator, "POST", "/apis/batch/v1/namespaces/default/jobs",
              job("chatty", "echo one; sleep 0.3; echo two"))  # fmt: skip
    wait_for("a pod", lambda: emulator.objects("pods"), 5)
    assert kubectl("logs", "-f", "job/chatty") == "one\ntwo\n"
    assert kubectl("logs", "job/chatty", "--tail=1") == "two\n"


def test_a_restarting_container_keeps_the_current_and_previous_logs(
    emulator: Emulator, core: Any
) -> None:
    script = (
        'n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; echo "run $n"; exit 1'
    )
    http_call(emulator, "POST", "/api/v1/namespaces/default/pods", pod("loop", script))

    def restarted() -> dict[str, Any] | None:
        (found,) = emulator.objects("pods")
        statuses = found["status"].get("containerStatuses") or []
        return statuses[0] if statuses and statuses[0]["restartCount"] >= 3 else None

    main = wait_for("three restarts", restarted, 5)
    assert main["lastState"]["terminated"]["exitCode"] == 1
    assert emulator.objects("pods")[0]["status"]["phase"] == "Running"  # restartPolicy Always
    current = core.read_namespaced_pod_log("loop", "default")
    previous = core.read_namespaced_pod_log("loop", "default", previous=True)
    assert re.fullmatch(r"run \d+\n", current) or current == ""  # may be between runs
    assert re.fullmatch(r"run \d+\n", previous)
