"""``crontask plan PATH --server URL`` when a file of PATH defines the key of a task created
through the API of that server: ``run`` would report a conflict and keep the API's definition
(an API location sorts first), so the plan reports the same conflict as a problem (exit 1) and
plans no step for that key, as the server's own ``POST /api/v1/plan`` does. It printed
``+ ops/apitask`` and exit 0. Against a real ``crontask run``, the task posted to its API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.hostile import cli
from tests.helpers import serving

FILE_TASK = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: a, namespace: ops}
spec:
  schedule: "@daily"
  command: {args: ["true"]}
"""
SHARED = FILE_TASK.replace("name: a,", "name: apitask,").replace("@daily", "@hourly")
API_TASK = {
    "apiVersion": "crontask.dev/v1alpha1",
    "kind": "CronTask",
    "metadata": {"name": "apitask", "namespace": "ops"},
    "spec": {"schedule": "@daily", "command": {"args": ["true"]}},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running crontask with the file task ``ops/a`` and the API task ``ops/apitask``."""
    root = tmp_path_factory.mktemp("plan-api-conflict")
    (root / "tasks").mkdir()
    (root / "tasks" / "a.yaml").write_text(FILE_TASK)
    with serving(root, "--state-dir", "state") as url:
        created = httpx.post(f"{url}/api/v1/tasks", json=API_TASK, timeout=10)
        assert created.status_code == 201, created.text
        yield url


@pytest.fixture(autouse=True)
def no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRONTASK_TOKEN", raising=False)


def test_a_file_sharing_an_api_tasks_key_is_a_conflict_the_api_wins(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.yaml").write_text(FILE_TASK)
    (tmp_path / "b.yaml").write_text(SHARED)
    code = cli("plan", str(tmp_path), "--server", server)
    out, err = capsys.readouterr()
    assert code == 1, out + err
    lines = out.splitlines()
    assert lines == [
        f"! ops/apitask is defined more than once: using {server} /api/v1/tasks/ops/apitask, "
        f"ignoring {tmp_path}/b.yaml:1:1",
        "Plan: 0 to add, 0 to change, 0 to remove, 1 unchanged.",
    ]
    # The server's own plan of the same text says the same: the API's task wins, no step.
    answer = httpx.post(
        f"{server}/api/v1/plan",
        content=(FILE_TASK + "---\n" + SHARED).encode(),
        headers={"Content-Type": "application/yaml"},
        timeout=10,
    ).json()
    assert answer["steps"] == []
    assert answer["problems"] == [
        "ops/apitask is defined more than once: using /api/v1/tasks/ops/apitask, ignoring body:8:1"
    ]


def test_without_the_shared_key_the_plan_is_clean(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The API's task is still not the files' to remove, nor any problem of theirs."""
    (tmp_path / "a.yaml").write_text(FILE_TASK)
    code = cli("plan", str(tmp_path), "--server", server)
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert out.splitlines() == ["Plan: 0 to add, 0 to change, 0 to remove, 1 unchanged."]
