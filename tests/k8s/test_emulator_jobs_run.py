"""The Job controller and kubelet doubles (``Emulator(run_jobs=True)``): a Job's pods run
their container's command as real local processes, and the Job's status follows what the
processes did, as the Kubernetes docs describe it ("Jobs": pod backoff failure policy, Job
termination and cleanup, terminal Job conditions; "Pod Lifecycle": phases, container
states, restart policy). Each scenario waits on the stored state with a deadline."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.helpers import wait_for
from tests.k8s.emulator import ApiError, Emulator
from tests.k8s.emulator.fixtures import Kubectl, live_processes, serve
from tests.k8s.emulator.manifests import condition, container, finished, job
from tests.k8s.support import WatchCollector, error_body

JOB_LABELS = ("job-name", "batch.kubernetes.io/job-name", "controller-uid",
              "batch.kubernetes.io/controller-uid")  # fmt: skip


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    yield from serve(run_jobs=True)


@pytest.fixture
def batch(k8s_api_client: Any) -> Any:
    return client.BatchV1Api(k8s_api_client)


@pytest.fixture
def core(k8s_api_client: Any) -> Any:
    return client.CoreV1Api(k8s_api_client)


def stored(emulator: Emulator, resource: str, name: str) -> dict[str, Any] | None:
    return next((o for o in emulator.objects(resource) if o["metadata"]["name"] == name), None)


def wait_finished(emulator: Emulator, name: str, timeout: float = 10) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        found = stored(emulator, "jobs", name)
        return found if found and finished(found) else None

    return wait_for(f"Job {name} to finish", done, timeout)


def pods_of(emulator: Emulator, name: str) -> list[dict[str, Any]]:
    return [
        p
        for p in emulator.objects("pods")
        if p["metadata"].get("labels", {}).get("job-name") == name
    ]


def running_pid(emulator: Emulator, name: str) -> int:
    """The pid a running pod of Job ``name`` printed first (its shell: the group leader)."""

    def printed() -> int | None:
        for found in pods_of(emulator, name):
            try:
                first = emulator.pod_log(found["metadata"]["name"]).split("\n")[0]
            except ApiError:  # not started yet
                continue
            if first.isdigit():
                return int(first)
        return None

    return wait_for(f"a running pod of {name}", printed, 5)


def test_a_job_runs_its_command_as_a_local_process(
    emulator: Emulator, batch: Any, core: Any
) -> None:
    body = job(
        "hello", containers=[container('echo "hello $WHO"; echo oops >&2', env={"WHO": "world"})]
    )
    created = batch.create_namespaced_job("default", body)
    done = wait_finished(emulator, "hello")
    status = done["status"]
    assert finished(done) == "Complete"
    assert [(c["type"], c["reason"], c["message"]) for c in status["conditions"]] == [
        ("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
        ("Complete", "CompletionsReached", "Reached expected number of succeeded pods"),
    ]
    assert (status["succeeded"], status["ready"], status["terminating"]) == (1, 0, 0)
    assert "active" not in status
    assert "failed" not in status
    assert status["uncountedTerminatedPods"] == {}
    assert status["startTime"] <= status["completionTime"]
    (ran,) = pods_of(emulator, "hello")
    meta = ran["metadata"]
    assert re.fullmatch(r"hello-[a-z0-9]{5}", meta["name"])
    assert meta["generateName"] == "hello-"
    assert {k: meta["labels"][k] for k in JOB_LABELS} == {
        "job-name": "hello",
        "batch.kubernetes.io/job-name": "hello",
        "controller-uid": created.metadata.uid,
        "batch.kubernetes.io/controller-uid": created.metadata.uid,
    }
    assert meta["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "Job", "name": "hello", "uid": created.metadata.uid,
         "controller": True, "blockOwnerDeletion": True}
    ]  # fmt: skip
    assert ran["spec"]["nodeName"] == "emulator-node-1"
    assert (ran["status"]["phase"], ran["status"]["hostIP"]) == ("Succeeded", "127.0.0.1")
    (main,) = ran["status"]["containerStatuses"]
    ended = main["state"]["terminated"]
    assert (ended["exitCode"], ended["reason"]) == (0, "Completed")
    assert ended["startedAt"] <= ended["finishedAt"]
    assert (main["restartCount"], main["ready"]) == (0, False)
    ready = next(c for c in ran["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PodCompleted")
    assert core.read_namespaced_pod_log(meta["name"], "default") == "hello world\noops\n"
    reasons = {(e["reason"], e["message"]) for e in emulator.objects("events")
               if e["involvedObject"]["kind"] == "Job"}  # fmt: skip
    assert reasons == {
        ("SuccessfulCreate", f"Created pod: {meta['name']}"),
        ("Completed", "Job completed"),
    }


def test_failed_pods_are_retried_up_to_the_backoff_limit(
    emulator: Emulator, batch: Any, core: Any
) -> None:
    batch.create_namespaced_job("default", job("flaky", "echo attempt; exit 3", backoffLimit=2))
    done = wait_finished(emulator, "flaky")
    status = done["status"]
    assert finished(done) == "Failed"
    assert status["failed"] == 3  # the first pod and backoffLimit retries
    assert "succeeded" not in status
    assert "completionTime" not in status
    for kind in ("FailureTarget", "Failed"):
        found = condition(done, kind)
        assert found is not None
        assert (found["reason"], found["message"]) == (
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        )
    pods = pods_of(emulator, "flaky")
    assert len(pods) == 3  # failed pods stay, with their logs
    for failed in pods:
        assert failed["status"]["phase"] == "Failed"
        ended = failed["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (ended["exitCode"], ended["reason"]) == (3, "Error")
        assert core.read_namespaced_pod_log(failed["metadata"]["name"], "default") == "attempt\n"


def test_backoff_limit_zero_fails_on_the_first_failure(emulator: Emulator, batch: Any) -> None:
    batch.create_namespaced_job("default", job("once", "exit 1", backoffLimit=0))
    assert wait_finished(emulator, "once")["status"]["failed"] == 1
    assert len(pods_of(emulator, "once")) == 1


def test_a_retry_that_succeeds_completes_the_job(
    emulator: Emulator, batch: Any, tmp_path: Path
) -> None:
    script = 'if [ -e "$MARK" ]; then echo second; else touch "$MARK"; exit 1; fi'
    body = job("retry", containers=[container(script, env={"MARK": str(tmp_path / "m")})])
    batch.create_namespaced_job("default", body)
    done = wait_finished(emulator, "retry")
    assert finished(done) == "Complete"
    assert (done["status"]["failed"], done["status"]["succeeded"]) == (1, 1)
    phases = sorted(p["status"]["phase"] for p in pods_of(emulator, "retry"))
    assert phases == ["Failed", "Succeeded"]


def test_active_deadline_kills_the_process_and_fails_the_job(
    emulator: Emulator, batch: Any
) -> None:
    began = time.monotonic()
    batch.create_namespaced_job(
        "default", job("slow", "echo $$; sleep 30", activeDeadlineSeconds=1, backoffLimit=3)
    )
    pid = running_pid(emulator, "slow")
    done = wait_finished(emulator, "slow")
    assert time.monotonic() - began >= 1
    for kind in ("FailureTarget", "Failed"):
        found = condition(done, kind)
        assert found is not None
        assert (found["reason"], found["message"]) == (
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        )
    assert done["status"]["failed"] == 1
    assert pods_of(emulator, "slow") == []  # the active pod was deleted...
    assert live_processes([pid]) == []  # ...and its process killed


def test_completions_with_parallelism(emulator: Emulator, batch: Any) -> None:
    batch.create_namespaced_job("default", job("many", "echo x", completions=3, parallelism=2))
    done = wait_finished(emulator, "many")
    assert (finished(done), done["status"]["succeeded"]) == ("Complete", 3)
    assert len(pods_of(emulator, "many")) == 3


def test_on_failure_restarts_the_container_in_the_same_pod(
    emulator: Emulator, batch: Any, core: Any, tmp_path: Path
) -> None:
    script = 'if [ -e "$MARK" ]; then echo second; else touch "$MARK"; echo first; exit 1; fi'
    body = job("again", restart_policy="OnFailure",
               containers=[container(script, env={"MARK": str(tmp_path / "m")})])  # fmt: skip
    batch.create_namespaced_job("default", body)
    done = wait_finished(emulator, "again")
    assert finished(done) == "Complete"
    assert "failed" not in done["status"]  # the pod never failed: its container restarted
    (ran,) = pods_of(emulator, "again")
    (main,) = ran["status"]["containerStatuses"]
    assert main["restartCount"] == 1
    assert main["lastState"]["terminated"]["exitCode"] == 1
    assert main["state"]["terminated"]["reason"] == "Completed"
    name = ran["metadata"]["name"]
    assert core.read_namespaced_pod_log(name, "default") == "second\n"
    assert core.read_namespaced_pod_log(name, "default", previous=True) == "first\n"


def test_on_failure_restarts_count_against_the_backoff_limit(
    emulator: Emulator, batch: Any
) -> None:
    batch.create_namespaced_job(
        "default", job("crash", "exit 2", restart_policy="OnFailure", backoffLimit=1)
    )
    done = wait_finished(emulator, "crash")
    found = condition(done, "Failed")
    assert found is not None
    assert found["reason"] == "BackoffLimitExceeded"
    assert pods_of(emulator, "crash") == []  # the restarting pod was deleted


def test_deleting_a_running_job_kills_its_processes(emulator: Emulator, batch: Any) -> None:
    batch.create_namespaced_job("default", job("long", "echo $$; sleep 30"))
    pid = running_pid(emulator, "long")
    batch.delete_namespaced_job("long", "default", propagation_policy="Background")
    wait_for("the pod to be gone", lambda: not pods_of(emulator, "long"), 5)
    assert live_processes([pid]) == []


def test_an_orphaned_pod_keeps_running(emulator: Emulator, batch: Any, core: Any) -> None:
    batch.create_namespaced_job("default", job("orphan", "echo $$; sleep 30"))
    pid = running_pid(emulator, "orphan")
    batch.delete_namespaced_job("orphan", "default")  # batch/v1's default: Orphan
    wait_for("the Job to be gone", lambda: stored(emulator, "jobs", "orphan") is None, 5)
    (kept,) = pods_of(emulator, "orphan")
    assert "ownerReferences" not in kept["metadata"]
    assert kept["status"]["phase"] == "Running"
    assert pid in live_processes([pid])  # the shell and its sleep
    core.delete_namespaced_pod(kept["metadata"]["name"], "default")
    wait_for("the pod to be gone", lambda: not pods_of(emulator, "orphan"), 5)
    assert live_processes([pid]) == []


def test_a_running_pod_reports_running_and_ready(emulator: Emulator, batch: Any) -> None:
    batch.create_namespaced_job("default", job("up", "echo $$; sleep 30"))
    running_pid(emulator, "up")

    def ready_job() -> dict[str, Any] | None:
        found = stored(emulator, "jobs", "up")
        return found if found and found["status"].get("ready") == 1 else None

    status = wait_for("the Job to count a ready pod", ready_job, 5)["status"]
    assert (status["active"], status["terminating"]) == (1, 0)
    (pod,) = pods_of(emulator, "up")
    (main,) = pod["status"]["containerStatuses"]
    assert (pod["status"]["phase"], main["ready"], main["started"]) == ("Running", True, True)
    assert "startedAt" in main["state"]["running"]


def test_env_values_and_field_refs(emulator: Emulator, batch: Any, core: Any) -> None:
    main = container('echo "$GREETING $POD $HOSTNAME $KUBERNETES_SERVICE_HOST"')
    main["env"] = [
        {"name": "GREETING", "value": "hi"},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    batch.create_namespaced_job("default", job("env", containers=[main]))
    wait_finished(emulator, "env")
    (ran,) = pods_of(emulator, "env")
    name = ran["metadata"]["name"]
    assert core.read_namespaced_pod_log(name, "default") == f"hi {name} {name} 127.0.0.1\n"


def test_a_missing_executable_is_a_start_error(emulator: Emulator, batch: Any) -> None:
    missing = {"name": "main", "image": "busybox", "command": ["/nonexistent/tool"]}
    batch.create_namespaced_job("default", job("nope", containers=[missing], backoffLimit=0))
    assert finished(wait_finished(emulator, "nope")) == "Failed"
    (ran,) = pods_of(emulator, "nope")
    ended = ran["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (ended["exitCode"], ended["reason"]) == (128, "StartError")
    assert "executable file not found" in ended["message"]


def test_a_suspended_job_makes_no_pods_until_resumed(emulator: Emulator, batch: Any) -> None:
    batch.create_namespaced_job("default", job("later", "echo x", suspend=True))

    def suspended() -> dict[str, Any] | None:
        found = stored(emulator, "jobs", "later")
        return found if found and condition(found, "Suspended") else None

    assert "startTime" not in wait_for("the Suspended condition", suspended, 5)["status"]
    assert pods_of(emulator, "later") == []
    batch.patch_namespaced_job("later", "default", {"spec": {"suspend": False}})
    done = wait_finished(emulator, "later")
    assert finished(done) == "Complete"
    resumed = next(c for c in done["status"]["conditions"] if c["type"] == "Suspended")
    assert (resumed["status"], resumed["reason"]) == ("False", "JobResumed")


def test_a_watch_sees_the_job_progress(emulator: Emulator, batch: Any) -> None:
    collector = WatchCollector(
        batch.list_namespaced_job, "default", label_selector="crontask.dev/task=watched"
    ).start()
    try:
        emulator.wait_for_watches(1, "jobs")
        batch.create_namespaced_job(
            "default", job("seen", "echo x", labels={"crontask.dev/task": "watched"})
        )
        events = collector.take_until(
            lambda e: any(c.type == "Complete" for c in e["object"].status.conditions or [])
        )
        assert events[0]["type"] == "ADDED"
        assert any(e["object"].status.active == 1 for e in events)  # seen running first
        assert events[-1]["object"].status.completion_time is not None
    finally:
        collector.stop()


def test_a_failed_job_reports_why_in_an_event(emulator: Emulator, batch: Any) -> None:
    batch.create_namespaced_job("default", job("bad", "exit 1", backoffLimit=0))
    wait_finished(emulator, "bad")
    warnings = [
        (e["type"], e["reason"]) for e in emulator.objects("events") if e["type"] == "Warning"
    ]
    assert ("Warning", "BackoffLimitExceeded") in warnings


def test_kubectl_follows_a_run(emulator: Emulator, kubectl: Kubectl) -> None:
    manifest = job("hi", 'echo "hello from the job"')
    kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    kubectl("wait", "--for=condition=complete", "job/hi", "--timeout=10s")
    jobs = [re.split(r"\s{2,}", line.strip()) for line in kubectl("get", "jobs").splitlines()]
    assert jobs[1][:3] == ["hi", "Complete", "1/1"]
    pods = [
        re.split(r"\s{2,}", line.strip())
        for line in kubectl("get", "pods", "-l", "job-name=hi").splitlines()
    ]
    assert pods[1][1:4] == ["0/1", "Completed", "0"]
    assert kubectl("logs", "job/hi") == "hello from the job\n"


def test_logs_of_a_pod_that_is_gone_are_gone(emulator: Emulator, batch: Any, core: Any) -> None:
    batch.create_namespaced_job("default", job("bye", "echo x"))
    wait_finished(emulator, "bye")
    (ran,) = pods_of(emulator, "bye")
    core.delete_namespaced_pod(ran["metadata"]["name"], "default")
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log(ran["metadata"]["name"], "default")
    assert (err.value.status, error_body(err.value)["reason"]) == (404, "NotFound")
