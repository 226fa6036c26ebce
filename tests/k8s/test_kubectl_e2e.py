"""kubectl end to end: the committed CRD, CronTasks applied with kubectl, the real
``crontask run --kubernetes`` as a subprocess, and what ``kubectl get crontasks`` shows.

Three scenarios: command tasks (status, edits, a broken spec, run-now, restarts), the ``job``
action (Jobs owned by their CronTask, their outcome and log in the status, the history and an
Event), and the ``job`` action's policies (timeout, retries, Forbid, Replace). By default
against the project's API emulator, which runs a Job's container as a local process. With
``pytest --e2e`` and ``KUBECONFIG`` set, the same scenarios run against that cluster (kind,
k3d; the Jobs pull ``busybox``): only the fault injections the emulator offers (a cut watch, a
compaction) are left out there. It uses the namespace ``default`` and deletes what it created.

Every wait polls something observable (an object's status, a run record, a log line) with a
deadline. Skipped where kubectl is missing (the ``kubectl`` fixture says so).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.runs import RunRecord, Trigger
from reconciler.store import open_store, sqlite_url
from reconciler.store.base import RunQuery
from tests.e2e.conftest import START_WAIT
from tests.helpers import free_port, wait_for
from tests.k8s.conftest import REAL_CRD, ROOT
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import Kubectl
from tests.k8s.emulator.manifests import finished

pytestmark = pytest.mark.e2e

COLUMNS = [
    "NAME",
    "SCHEDULE",
    "SUSPEND",
    "ACTIVE",
    "LAST SCHEDULE",
    "LAST RESULT",
    "NEXT RUN",
    "AGE",
]


def job_manifest(name: str, script: str, **spec: Any) -> str:
    """A CronTask whose action is a Job running ``sh -c script`` in busybox (the emulator runs
    the container's command as a local process)."""
    container = {"name": "main", "image": "busybox", "command": ["sh", "-c", script]}
    doc = {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "schedule": "0 0 1 1 *",
            **spec,
            "job": {"spec": {"backoffLimit": 0, "template": {"spec": {"containers": [container]}}}},
        },
    }
    return json.dumps(doc)


def manifest(name: str, schedule: str, args: list[str], **meta: Any) -> str:
    doc = {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": name, "namespace": "default", **meta},
        "spec": {"schedule": schedule, "command": {"args": args}},
    }
    return json.dumps(doc)


class Crontask:
    def __init__(self, workdir: Path, kubeconfig: Path) -> None:
        self.workdir = workdir
        self.kubeconfig = kubeconfig
        self.state = workdir / "state"
        self.log_path = workdir / "crontask.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.offset = 0

    def start(self) -> Crontask:
        self.offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "reconciler",
                    "run",
                    "--kubernetes",
                    "--kubeconfig",
                    str(self.kubeconfig),
                    "--state-dir",
                    str(self.state),
                    "--listen",
                    f"127.0.0.1:{free_port()}",
                    "--shutdown-grace",
                    "2s",
                    "--kill-grace",
                    "1s",
                ],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "HOME": str(self.workdir)},
            )
        self.wait_log("crontask started", START_WAIT)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[self.offset :]

    def wait_log(self, text: str, timeout: float = 20.0) -> None:
        def seen() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None and text not in self.log():
                raise AssertionError(f"crontask exited ({self.proc.returncode}):\n{self.log()}")
            return text in self.log()

        wait_for(f"log line {text!r}", seen, timeout)

    def runs(self, task: str) -> list[RunRecord]:
        store = open_store(sqlite_url(self.state))
        try:
            return store.query(RunQuery(task=task, limit=1000)).items
        finally:
            store.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                # Not left running past its test: it would hold its port, and its dropped
                # Popen would fail a later test with a ResourceWarning.
                self.proc.kill()
                self.proc.wait()
                raise


def real_cluster(request: pytest.FixtureRequest) -> Path | None:
    if not request.config.getoption("--e2e"):
        return None
    path = os.environ.get("KUBECONFIG")
    if not path:
        pytest.skip(
            "--e2e needs KUBECONFIG pointing at a test cluster (e.g. `kind create cluster`)"
        )
    return Path(path)


@pytest.fixture
def kubeconfig(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """The real cluster's kubeconfig under --e2e, else one for a fresh emulator."""
    real = real_cluster(request)
    if real is not None:
        return real
    emulator: Emulator = request.getfixturevalue("emulator")
    return emulator.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def crontask(tmp_path: Path, kubeconfig: Path) -> Iterator[Crontask]:
    (tmp_path / ".crontask").mkdir()  # the heartbeat example writes its log there
    instance = Crontask(tmp_path, kubeconfig)
    yield instance
    instance.stop()


def jobs_of(kubectl: Kubectl, task: str, state: str | None = "any") -> list[dict[str, Any]]:
    """The Jobs of the CronTask ``task`` in ``default``: all of them, or those whose condition
    is ``state`` (``Complete``, ``Failed``; ``None`` for the active ones)."""
    listed = json.loads(
        kubectl("get", "jobs", "-l", f"crontask.dev/task=default.{task}", "-o", "json")
    )
    return [j for j in listed["items"] if state == "any" or finished(j) == state]


def get(kubectl: Kubectl, name: str) -> dict[str, Any]:
    obj = json.loads(kubectl("get", "crontask", name, "-o", "json"))
    assert isinstance(obj, dict)
    return obj


def status(kubectl: Kubectl, name: str) -> dict[str, Any]:
    found: dict[str, Any] = get(kubectl, name).get("status") or {}
    return found


def condition(kubectl: Kubectl, name: str, kind: str = "Ready") -> dict[str, Any]:
    for item in status(kubectl, name).get("conditions") or []:
        if item["type"] == kind:
            return dict(item)
    return {}


def events_of(kubectl: Kubectl, name: str) -> str:
    """``kubectl get events`` of the object ``name``, as a table."""
    return kubectl("get", "events", "--field-selector", f"involvedObject.name={name}")


@pytest.mark.slow  # 14 s: the whole kubectl walk-through against a running crontask
def test_crontask_under_kubectl(
    kubectl: Kubectl, crontask: Crontask, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    emulator: Emulator | None = None
    if real_cluster(request) is None:
        emulator = request.getfixturevalue("emulator")
    else:
        request.addfinalizer(
            lambda: kubectl(
                "delete", "crontask", "tick", "heartbeat", "late", "rare", "--ignore-not-found"
            )
        )
    kubectl("apply", "-f", str(REAL_CRD))
    kubectl("apply", "-f", str(ROOT / "examples" / "tasks" / "heartbeat.yaml"))
    kubectl("apply", "-f", "-", stdin=manifest("tick", "* * * * * *", ["sh", "-c", "echo v1"]))
    crontask.start()

    # -- status after real runs, as `kubectl get` shows it ----------------------------------
    wait_for(
        "a finished run in tick's status",
        lambda: status(kubectl, "tick").get("lastRun", {}).get("result") == "succeeded",
    )
    table = kubectl("get", "crontasks")
    header, *rows = table.splitlines()
    positions = [header.index(c) for c in COLUMNS]
    assert positions == sorted(positions), header
    tick = next(r for r in rows if r.startswith("tick "))
    assert "* * * * * *" in tick
    assert "succeeded" in tick
    assert "Z" in tick  # the NEXT RUN column, an RFC 3339 time
    assert any(r.startswith("heartbeat ") and "@every 30s" in r for r in rows)
    current = status(kubectl, "tick")
    assert current["observedGeneration"] == 1
    assert condition(kubectl, "tick")["reason"] == "Scheduled"
    for field in ("lastScheduleTime", "lastSuccessfulTime", "nextScheduleTime"):
        assert current[field].endswith("Z"), field
    assert current["activeCount"] == len(current["active"])
    assert "lastRun:" in kubectl("get", "crontask", "tick", "-o", "yaml")
    assert condition(kubectl, "heartbeat")["status"] == "True"

    # -- edit: a new generation is applied -----------------------------------------------------
    kubectl("apply", "-f", "-", stdin=manifest("tick", "* * * * * *", ["sh", "-c", "echo v2"]))
    crontask.wait_log("task updated")
    wait_for("observedGeneration 2", lambda: status(kubectl, "tick")["observedGeneration"] == 2)
    wait_for(
        "a run of the new spec",
        lambda: any("v2" in r.output for r in crontask.runs("default/tick")),
    )

    # -- break: InvalidSpec, an Event, and the last good spec keeps running -------------------
    kubectl("apply", "-f", "-", stdin=manifest("tick", "* * 99 * * *", ["sh", "-c", "echo v3"]))
    wait_for("InvalidSpec", lambda: condition(kubectl, "tick")["reason"] == "InvalidSpec")
    broken = condition(kubectl, "tick")
    assert broken["status"] == "False"
    assert "hour field" in broken["message"]
    assert status(kubectl, "tick")["observedGeneration"] == 3
    assert condition(kubectl, "tick", "Stalled")["status"] == "True"
    # Events are written by a thread of their own, not with the status: maybe a moment later.
    wait_for("an InvalidSpec Event", lambda: "InvalidSpec" in events_of(kubectl, "tick"))
    assert "Warning" in events_of(kubectl, "tick")
    seen = {r.id for r in crontask.runs("default/tick")}
    wait_for(
        "the last good spec still running",
        lambda: any(r.id not in seen and "v2" in r.output for r in crontask.runs("default/tick")),
    )
    kubectl("apply", "-f", "-", stdin=manifest("tick", "* * * * * *", ["sh", "-c", "echo v4"]))
    wait_for("Ready again", lambda: condition(kubectl, "tick")["reason"] == "Scheduled")

    # -- a cut watch and a 410 in the middle: later objects are still picked up --------------
    if emulator is not None:  # fault injection exists only in the emulator
        emulator.cut_watches()
        emulator.compact()
    kubectl("apply", "-f", "-", stdin=manifest("late", "* * * * * *", ["true"]))
    wait_for(
        "late runs after the watch was cut and compacted",
        lambda: status(kubectl, "late").get("lastRun", {}).get("result") == "succeeded",
    )

    # -- run-now from kubectl: one manual run per new value ------------------------------------
    kubectl("apply", "-f", "-", stdin=manifest("rare", "0 0 1 1 *", ["sh", "-c", "echo manual"]))
    wait_for("rare scheduled", lambda: condition(kubectl, "rare").get("reason") == "Scheduled")
    kubectl("annotate", "ct", "rare", "crontask.dev/run-now=1", "--overwrite")

    def manual_runs() -> list[RunRecord]:
        return [r for r in crontask.runs("default/rare") if r.trigger is Trigger.MANUAL]

    wait_for("the manual run", lambda: len(manual_runs()) == 1)
    wait_for("lastRunNow", lambda: status(kubectl, "rare").get("lastRunNow") == "1")
    wait_for("a RunStarted Event", lambda: "RunStarted" in events_of(kubectl, "rare"))

    # -- delete: the job goes -----------------------------------------------------------------
    kubectl("delete", "crontask", "tick")
    crontask.wait_log("task removed")
    after = len(crontask.runs("default/tick"))
    wait_for("late runs twice more", lambda: len(crontask.runs("default/late")) >= 3)
    assert len(crontask.runs("default/tick")) <= after + 1  # at most one already under way

    # -- restart: the handled run-now value is not run again; a new one is -------------------
    crontask.stop()
    crontask.start()
    wait_for("late runs after the restart", lambda: status(kubectl, "late")["activeCount"] >= 0)
    wait_for(
        "a run after the restart",
        lambda: "run started" in crontask.log(),
    )
    assert len(manual_runs()) == 1
    kubectl("annotate", "ct", "rare", "crontask.dev/run-now=2", "--overwrite")
    wait_for("the second manual run", lambda: len(manual_runs()) == 2)
    wait_for("lastRunNow 2", lambda: status(kubectl, "rare").get("lastRunNow") == "2")
    assert len(manual_runs()) == 2


@pytest.mark.slow
@pytest.mark.emulator(run_jobs=True, pod_backoff=0.05)
def test_job_action_under_kubectl(
    kubectl: Kubectl, crontask: Crontask, request: pytest.FixtureRequest
) -> None:
    """The ``job`` action as a cluster's user sees it: a run is a Job owned by its CronTask,
    its outcome and log reach the CronTask's status, the run history and an Event, and the
    Jobs go with the CronTask."""
    real = real_cluster(request) is not None
    if real:
        request.addfinalizer(
            lambda: kubectl("delete", "crontask", "hello", "broken", "--ignore-not-found")
        )
    timeout = 180.0 if real else 20.0  # a real cluster pulls the image and schedules the pod
    kubectl("apply", "-f", str(REAL_CRD))
    kubectl("apply", "-f", "-", stdin=job_manifest("hello", "echo from-the-job"))
    kubectl("apply", "-f", "-", stdin=job_manifest("broken", "echo 'ERROR: disk full'; exit 3"))
    crontask.start()

    def scheduled(name: str) -> bool:
        return condition(kubectl, name).get("reason") == "Scheduled"

    for name in ("hello", "broken"):
        wait_for(f"{name} scheduled", functools.partial(scheduled, name))
        kubectl("annotate", "ct", name, "crontask.dev/run-now=1", "--overwrite")

    # -- a run that succeeds: a Job owned by the CronTask, named in the status ----------------
    wait_for(
        "hello succeeded",
        lambda: status(kubectl, "hello").get("lastRun", {}).get("result") == "succeeded",
        timeout,
    )
    (job,) = jobs_of(kubectl, "hello")
    (owner,) = job["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("CronTask", "hello", True)
    assert owner["uid"] == get(kubectl, "hello")["metadata"]["uid"]
    assert any(
        c["type"] == "Complete" and c["status"] == "True" for c in job["status"]["conditions"]
    )
    current = status(kubectl, "hello")
    assert current["lastRun"]["job"]["name"] == job["metadata"]["name"]
    assert current["activeCount"] == 0
    (record,) = crontask.runs("default/hello")
    assert record.trigger is Trigger.MANUAL
    assert "from-the-job" in record.output  # the pod's log, kept in the run history

    # -- a run that fails: the exit code and the log's tail in the status and an Event ---------
    wait_for(
        "broken failed",
        lambda: status(kubectl, "broken").get("lastRun", {}).get("result") == "failed",
        timeout,
    )
    assert status(kubectl, "broken")["lastRun"]["exitCode"] == 3

    def events() -> str:
        return kubectl("get", "events", "--field-selector", "involvedObject.name=broken")

    wait_for("a RunFailed Event", lambda: "RunFailed" in events())
    assert "ERROR: disk full" in events()
    table = kubectl("get", "jobs,crontasks")
    assert job["metadata"]["name"] in table
    assert "failed" in table

    # -- delete: the CronTask's Jobs are garbage-collected with it ----------------------------
    kubectl("delete", "crontask", "hello")
    wait_for("hello's Jobs gone", lambda: not jobs_of(kubectl, "hello"), timeout)
    assert jobs_of(kubectl, "broken")


@pytest.mark.slow
@pytest.mark.emulator(run_jobs=True, pod_backoff=0.05)
def test_job_policies_under_kubectl(
    kubectl: Kubectl, crontask: Crontask, request: pytest.FixtureRequest
) -> None:
    """Timeout, retry, Forbid and Replace of the ``job`` action, seen from ``kubectl``: each
    is the Jobs the cluster holds and the CronTask's status."""
    real = real_cluster(request) is not None
    names = ("deadline", "again", "forbid", "swap")
    if real:
        request.addfinalizer(lambda: kubectl("delete", "crontask", *names, "--ignore-not-found"))
    timeout = 180.0 if real else 20.0
    kubectl("apply", "-f", str(REAL_CRD))
    manifests = [
        job_manifest("deadline", "sleep 600", timeoutSeconds=1),
        job_manifest("again", "exit 1", retry={"limit": 1, "backoffSeconds": 0}),
        job_manifest("forbid", "sleep 600", concurrencyPolicy="Forbid"),
        job_manifest("swap", "sleep 600", concurrencyPolicy="Replace"),
    ]
    for document in manifests:
        kubectl("apply", "-f", "-", stdin=document)
    crontask.start()
    crontask.wait_log("kubernetes source started")

    def scheduled(name: str) -> bool:
        return condition(kubectl, name).get("reason") == "Scheduled"

    def result(name: str) -> str | None:
        found: str | None = status(kubectl, name).get("lastRun", {}).get("result")
        return found

    def run_now(name: str, value: str) -> None:
        kubectl("annotate", "ct", name, f"crontask.dev/run-now={value}", "--overwrite")

    for name in names:
        wait_for(f"{name} scheduled", functools.partial(scheduled, name))
        run_now(name, "1")

    # -- timeoutSeconds is the Job's activeDeadlineSeconds; DeadlineExceeded is timedOut ------
    wait_for("deadline timed out", lambda: result("deadline") == "timedOut", timeout)
    (job,) = jobs_of(kubectl, "deadline")
    assert job["spec"]["activeDeadlineSeconds"] == 1

    # -- a retry is a second Job of the same run ----------------------------------------------
    wait_for(
        "again's two Jobs failed", lambda: len(jobs_of(kubectl, "again", "Failed")) == 2, timeout
    )
    wait_for("again failed", lambda: result("again") == "failed", timeout)
    run_ids = {j["metadata"]["labels"]["crontask.dev/run-id"] for j in jobs_of(kubectl, "again")}
    records = crontask.runs("default/again")
    assert len(run_ids) == 1
    assert {r.id for r in records} == run_ids
    assert sorted((r.attempt, r.status.value) for r in records) == [(1, "failed"), (2, "failed")]

    # -- Forbid: a second run while the Job is active is skipped, no second Job ---------------
    wait_for("forbid's Job active", lambda: jobs_of(kubectl, "forbid", None), timeout)
    run_now("forbid", "2")
    wait_for(
        "the second run skipped",
        lambda: any(r.reason == "ConcurrencyForbid" for r in crontask.runs("default/forbid")),
    )
    assert len(jobs_of(kubectl, "forbid")) == 1
    assert status(kubectl, "forbid")["activeCount"] == 1

    # -- Replace: the active Job is deleted and its run failed Replaced; a new Job runs -------
    (first,) = wait_for("swap's Job active", lambda: jobs_of(kubectl, "swap", None), timeout)
    run_now("swap", "2")
    wait_for(
        "the first run replaced",
        lambda: any(r.reason == "Replaced" for r in crontask.runs("default/swap")),
        timeout,
    )
    (second,) = wait_for(
        "a new Job",
        lambda: [
            j
            for j in jobs_of(kubectl, "swap", None)
            if j["metadata"]["uid"] != first["metadata"]["uid"]
        ],
        timeout,
    )
    wait_for(
        "the first Job gone",
        lambda: (
            first["metadata"]["uid"] not in {j["metadata"]["uid"] for j in jobs_of(kubectl, "swap")}
        ),
        timeout,
    )
    active: list[dict[str, Any]] = wait_for(
        "status.active names it", lambda: list(status(kubectl, "swap").get("active") or ())
    )
    assert [a["name"] for a in active] == [second["metadata"]["name"]]
