"""The job action end to end: the real ``crontask run`` (a subprocess) against the project's
Kubernetes emulator, which runs each Job's container as a local process (``run_jobs``), and
``kubectl`` to look at what it made.

``crontask`` starts the program with ``--kubeconfig`` (Jobs only) or, given ``"--kubernetes"``,
with the CronTask source too; ``jobs()`` lists the emulator's Jobs; every wait is a poll of an
observable effect with a deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

# The hook marks a failed test, so that stop_all prints crontask's log.
from tests.e2e.conftest import Crontask, pytest_runtest_makereport, stop_all
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import k8s_api_client, kubeconfig, kubectl, serve

__all__ = [
    "Crontask",
    "crontask",
    "emulator",
    "k8s_api_client",
    "kubeconfig",
    "kubectl",
    "pytest_runtest_makereport",
    "real_crd",
]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    yield from serve(run_jobs=True, pod_backoff=0.05, max_grace_period=0.5)


@pytest.fixture
def real_crd(emulator: Emulator) -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "deploy" / "crd.yaml").read_text())
    assert isinstance(crd, dict)
    return emulator.create_crd(crd)


@pytest.fixture
def crontask(
    tmp_path: Path, kubeconfig: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Crontask]]:
    started: list[Crontask] = []
    tasks = tmp_path / "tasks"
    tasks.mkdir(exist_ok=True)

    def start(*extra: str, shutdown_grace: str = "2s") -> Crontask:
        args = [*extra, "--kubeconfig", str(kubeconfig), "--resync", "2s"]
        instance = Crontask(tmp_path, tasks, args, {"HOME": str(tmp_path)}, shutdown_grace)
        started.append(instance)  # before it starts: one whose start is not seen is stopped too
        instance.start()
        return instance

    yield start
    stop_all(started, request)


def write_task(directory: Path, name: str, script: str, **spec: Any) -> Path:
    """A job task whose container runs ``sh -c script`` (the emulator runs it locally)."""
    job = spec.pop("job", {})
    job_spec = {
        "backoffLimit": 0,
        **job.pop("spec", {}),
        "template": {
            "spec": {
                "containers": [
                    {"name": "main", "image": "busybox", "command": ["sh", "-c", script]}
                ]
            }
        },
    }
    document = {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": name},
        "spec": {"schedule": "0 0 1 1 *", **spec, "job": {**job, "spec": job_spec}},
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def jobs(emulator: Emulator, task: str | None = None) -> list[dict[str, Any]]:
    """The emulator's Jobs (of one task: its label value, e.g. ``default.hello``)."""
    found = emulator.objects("jobs")
    if task is None:
        return found
    return [
        j for j in found if (j["metadata"].get("labels") or {}).get("crontask.dev/task") == task
    ]


def condition(job: dict[str, Any]) -> str | None:
    for item in (job.get("status") or {}).get("conditions") or ():
        if item["type"] in ("Complete", "Failed") and item["status"] == "True":
            return str(item["type"])
    return None


def trigger(instance: Crontask, key: str) -> dict[str, Any]:
    response = httpx.post(f"{instance.server}/api/v1/tasks/{key}/runs", timeout=10)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


class Gate:
    """A Job that runs until the test opens the gate: its container (a local process in the
    emulator) waits for a file. No sleep decides how long a Job lasts."""

    def __init__(self, directory: Path, name: str = "gate") -> None:
        self.path = directory / name

    def wait(self, then: str = "true") -> str:
        return f"while [ ! -e {self.path} ]; do sleep 0.05; done; {then}"

    def open(self) -> None:
        self.path.touch()


def api_calls(emulator: Emulator, since: int = 0) -> set[tuple[str, str, str]]:
    """``(group, resource, verb)`` of each request the emulator answered (from ``since``), as
    RBAC would see it: what a Role must grant for them."""
    found: set[tuple[str, str, str]] = set()
    for request in emulator.request_log[since:]:
        parts = request.path.strip("/").split("/")
        if parts[0] == "api":
            group, rest = "", parts[2:]
        elif parts[0] == "apis" and len(parts) > 3:
            group, rest = parts[1], parts[3:]
        else:
            continue  # discovery, /version, /openapi
        if rest[:1] == ["namespaces"] and len(rest) > 2:
            rest = rest[2:]
        resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
        named = len(rest) > 1
        verb = {"POST": "create", "DELETE": "delete", "PATCH": "patch", "PUT": "update"}.get(
            request.method
        )
        if verb is None:
            watching = request.query.get("watch") in ("true", "1")
            verb = "get" if named else ("watch" if watching else "list")
        found.add((group, resource, verb))
    return found
