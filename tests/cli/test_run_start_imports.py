"""A ``crontask run`` without Kubernetes (a folder of tasks, no ``--kubernetes``, no
``--kubeconfig``) runs without importing the Kubernetes client, and one on a run store at the
schema's head without importing Alembic: the two were a third of every start's imports (through
the API's refusal log, the job action's wiring, the single-lease check; and the read of the
store's revision). Not at its start, nor for a ``job`` task, which it cannot run: one in the
folder is a definition error (``job_options.WithoutJobs``), one PUT through the API a 422; nor
at its stop. The real command, under ``PYTHONPROFILEIMPORTTIME``, which names every module
imported on its stderr."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
import yaml

from reconciler import statedir
from reconciler.controller.job_options import NO_CONNECTION, NO_CONNECTION_REASON
from reconciler.store import open_store, sqlite_url
from tests.helpers import NEVER_DUE, free_port, start_crontask_run, task_doc, wait_for

HEAVY = ("kubernetes", "kubernetes_validate", "jsonschema", "alembic")
POD = {"containers": [{"name": "main", "image": "busybox"}]}


def job_task(name: str) -> dict[str, object]:
    document = task_doc(name, schedule="0 0 1 1 *", job={"spec": {"template": {"spec": POD}}})
    del document["spec"]["command"]
    return document


def lifetime_imports(folder: Path, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The modules ``crontask run`` (listening, so the API and the page load too) imported
    from its start to its exit, given a job task in its folder and one PUT through its API."""
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    port = free_port()
    tasks = f"{NEVER_DUE}---\n{yaml.safe_dump(job_task('j'))}"  # a command task, a job task
    proc, log = start_crontask_run(folder, "--listen", f"127.0.0.1:{port}", task=tasks)
    try:
        wait_for("crontask started", lambda: "crontask started" in log.read_text(), 60)
        assert NO_CONNECTION in log.read_text()  # the folder's job task: its error, said
        answer = httpx.put(
            f"http://127.0.0.1:{port}/api/v1/tasks/default/p", json=job_task("p"), timeout=30
        )
        assert answer.status_code == 422, answer.text
        assert NO_CONNECTION_REASON in answer.text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    lines = log.read_text().splitlines()
    assert proc.returncode == 0, lines[-20:]
    assert any("crontask stopped" in line for line in lines[-20:]), lines[-20:]  # all of it
    return {line.rpartition("|")[2].strip() for line in lines if line.startswith("import time:")}


def loaded(imported: set[str]) -> list[str]:
    return sorted(m for m in imported if any(m == h or m.startswith(f"{h}.") for h in HEAVY))


def test_a_run_without_kubernetes_on_a_store_at_head_imports_neither(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    statedir.prepare(state)
    open_store(sqlite_url(state), writer=True).close()  # made, at the schema's head
    imported = lifetime_imports(tmp_path, monkeypatch)
    assert "reconciler.api.routing" in imported  # importtime named them; the API was loaded
    assert loaded(imported) == []
