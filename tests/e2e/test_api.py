"""The HTTP interface of a running crontask, through real HTTP and the CLI clients."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.cli.remote import SKIPPED
from tests.e2e.conftest import Crontask
from tests.e2e.test_run import append, lines, task
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e


def api_task(name: str, args: list[str], schedule: str = "* * * * * *") -> dict[str, object]:
    return {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": name, "namespace": "ops"},
        "spec": {"schedule": schedule, "command": {"args": args}},
    }


def cli(app: Crontask, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *argv, "--server", app.server],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_health_tasks_and_metrics(crontask: Callable[..., Crontask], tmp_path: Path) -> None:
    app = crontask()
    (app.tasks / "tick.yaml").write_text(task("tick", append("tick.txt")))
    wait_for("a run", lambda: lines(tmp_path / "tick.txt"))
    with httpx.Client(base_url=app.server) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        listing = client.get("/api/v1/tasks").json()["items"]
        assert [t["key"] for t in listing] == ["default/tick"]
        detail = client.get("/api/v1/tasks/default/tick").json()
        assert detail["source"]["kind"] == "file"
        assert detail["source"]["location"].endswith("tick.yaml:1:1")
        assert len(detail["nextRuns"]) == 5
        assert detail["state"] == "Ready"
        metrics = client.get("/metrics").text
    for name in (
        "crontask_tasks",
        "crontask_runs_total",
        "crontask_run_duration_seconds",
        "crontask_run_start_delay_seconds",
        "crontask_reconcile_total",
        "crontask_task_next_run_timestamp_seconds",
    ):
        assert name in metrics
    assert 'crontask_runs_total{status="succeeded",task="default/tick"}' in metrics


@pytest.mark.slow
def test_api_task_crud_survives_a_restart(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    app = crontask()
    (app.tasks / "owned.yaml").write_text(task("owned", ["true"], schedule="@daily"))
    app.wait_log("task added")
    body = api_task("from-api", append("api.txt"))
    with httpx.Client(base_url=app.server) as client:
        created = client.post("/api/v1/tasks", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["source"]["kind"] == "api"
        wait_for("the API task to run", lambda: lines(tmp_path / "api.txt"))
        # A file-owned task cannot be changed through the API: 409, saying where to change it.
        conflict = client.put(
            "/api/v1/tasks/default/owned",
            json={
                **api_task("owned", ["true"]),
                "metadata": {"name": "owned", "namespace": "default"},
            },
        )
        assert conflict.status_code == 409
        assert conflict.headers["content-type"].startswith("application/problem+json")
        assert "owned.yaml" in conflict.json()["detail"]
    app.stop()
    app.start()
    with httpx.Client(base_url=app.server) as client:
        assert client.get("/api/v1/tasks/ops/from-api").status_code == 200
        assert client.delete("/api/v1/tasks/ops/from-api").status_code == 204
        assert client.get("/api/v1/tasks/ops/from-api").status_code == 404


@pytest.mark.slow
def test_manual_trigger_obeys_forbid_and_cli_clients(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    app = crontask()
    (app.tasks / "slow.yaml").write_text(task("slow", ["sleep", "30"], schedule="@yearly"))
    app.wait_log("task added")
    first = cli(app, "trigger", "default/slow", "--json")
    assert first.returncode == 0, first.stderr
    wait_for("the manual run", lambda: any(r.trigger == "manual" for r in app.runs("default/slow")))
    second = cli(app, "trigger", "default/slow")
    assert second.returncode == SKIPPED, second.stderr
    assert "skipped (ConcurrencyForbid)" in second.stdout
    tasks = cli(app, "tasks")
    assert "default/slow" in tasks.stdout
    # The trigger answers with the skip as decided; its record is written just after.
    wait_for(
        "the skip recorded",
        lambda: any(r.reason == "ConcurrencyForbid" for r in app.runs("default/slow")),
    )
    runs = cli(app, "runs", "default/slow")
    assert "ConcurrencyForbid" in runs.stdout
    with httpx.Client(base_url=app.server) as client:
        bad = client.post(
            "/api/v1/tasks", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert bad.status_code in (400, 422)
        assert bad.headers["content-type"].startswith("application/problem+json")


def plan_against(proposed: Path, server: str) -> subprocess.CompletedProcess[str]:
    """``crontask plan PROPOSED --server SERVER``, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", str(proposed), "--server", server],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crontask]:
    """One running instance for the plan tests, which only read it (a plan changes nothing):
    its folder holds ``a`` and ``b``, and a task made through the API is no file's."""
    workdir = tmp_path_factory.mktemp("plan")
    (workdir / "tasks").mkdir()
    app = Crontask(workdir, workdir / "tasks", [])
    try:
        app.start()
        (app.tasks / "a.yaml").write_text(task("a", ["true"], schedule="@daily"))
        (app.tasks / "b.yaml").write_text(task("b", ["true"], schedule="@daily"))
        app.wait_log("tasks=2")
        with httpx.Client(base_url=app.server) as client:
            made = client.post("/api/v1/tasks", json=api_task("api-made", ["true"]))
            assert made.status_code == 201, made.text
        yield app
    finally:
        app.stop()


def test_plan_against_a_running_instance(planned: Crontask, tmp_path: Path) -> None:
    app = planned
    proposed = tmp_path / "proposed"
    proposed.mkdir()
    (proposed / "a.yaml").write_text(task("a", ["true"], schedule="@hourly"))
    (proposed / "c.yaml").write_text(task("c", ["true"], schedule="@daily"))
    result = plan_against(proposed, app.server)
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert out[0].startswith("~ default/a")
    assert "    ~ spec.schedule: '@daily' -> '@hourly'" in out
    assert any(line.startswith("+ default/c") for line in out)
    assert any(line.startswith("- default/b") for line in out)
    assert not any("api-made" in line for line in out)  # not the folder's to remove
    assert out[-1] == "Plan: 1 to add, 1 to change, 1 to remove, 0 unchanged."


def test_plan_against_a_running_instance_keeps_a_broken_documents_task(
    planned: Crontask, tmp_path: Path
) -> None:
    """The running instance keeps a broken file's tasks in force; the plan says so rather than
    listing them as removed (its files cannot be paired with these: the task the broken
    document still names stands for them)."""
    app = planned
    proposed = tmp_path / "proposed"
    proposed.mkdir()
    (proposed / "a.yaml").write_text(task("a", ["true"], schedule="61 * * * *"))
    (proposed / "b.yaml").write_text(task("b", ["true"], schedule="@daily"))
    result = plan_against(proposed, app.server)
    assert result.returncode == 1, result.stderr  # the proposed folder has an error
    out = result.stdout.splitlines()
    assert out[0] == "  default/a  (kept as it is: its new definition has errors)"
    assert out[1].startswith(f"! {proposed}/a.yaml:")
    assert out[-1] == "Plan: 0 to add, 0 to change, 0 to remove, 2 unchanged."


@pytest.mark.slow
def test_plan_against_a_running_instance_keeps_the_tasks_a_broken_file_defines(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    """A file with two tasks, one broken in the proposed version: ``run`` keeps the file's
    last good definitions, both of them, and so does the plan (it listed the sound one as
    removed: the broken file's documents define nothing)."""
    app = crontask()
    two = task("a", ["true"], schedule="@daily") + "---\n" + task("b", ["true"], "@daily")
    (app.tasks / "ab.yaml").write_text(two)
    (app.tasks / "c.yaml").write_text(task("c", ["true"], schedule="@daily"))
    app.wait_log("tasks=3")
    proposed = tmp_path / "proposed"
    proposed.mkdir()
    (proposed / "ab.yaml").write_text(two.replace("@daily", "61 * * * *", 1))
    result = plan_against(proposed, app.server)
    assert result.returncode == 1, result.stderr
    out = result.stdout.splitlines()
    assert out[:3] == [
        f"- default/c  ({app.server} {app.tasks}/c.yaml:1:1)",
        "  default/a  (kept as it is: its new definition has errors)",
        "  default/b  (kept as it is: its new definition has errors)",
    ]
    assert out[-1] == "Plan: 0 to add, 0 to change, 1 to remove, 2 unchanged."


@pytest.mark.slow
def test_a_token_removed_from_the_auth_file_stops_working_without_a_restart(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    def tokens(*names: str) -> str:
        lines = [
            f"  - {{name: {n}, sha256: {hashlib.sha256(n.encode()).hexdigest()}, role: viewer}}"
            for n in names
        ]
        return "tokens:\n" + "\n".join(lines) + "\n"

    auth = tmp_path / "auth.yaml"
    auth.write_text(tokens("leaked-token-0123456789", "kept-token-0123456789"))
    app = crontask("--allow-empty", "--auth-config", str(auth))

    def answer(token: str) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.get(f"{app.server}/api/v1/tasks", headers=headers, timeout=10).status_code

    assert answer("leaked-token-0123456789") == 200
    auth.write_text(tokens("kept-token-0123456789"))
    wait_for("the removed token refused", lambda: answer("leaked-token-0123456789") == 401)
    assert answer("kept-token-0123456789") == 200
    app.wait_log("auth file read again")
