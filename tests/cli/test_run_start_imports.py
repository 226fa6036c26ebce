"""A ``crontask run`` without Kubernetes (a folder of command tasks, no ``--kubernetes``, no
``--kubeconfig``) starts without importing the Kubernetes client, and one on a run store at the
schema's head without importing Alembic: the two were a third of every start's imports (through
the API's refusal log, the job action's wiring, the single-lease check; and the read of the
store's revision). The real command, under ``PYTHONPROFILEIMPORTTIME``, which names every
module imported on its stderr."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from reconciler import statedir
from reconciler.store import open_store, sqlite_url
from tests.helpers import free_port, start_crontask_run, wait_for

HEAVY = ("kubernetes", "kubernetes_validate", "jsonschema", "alembic")


def started_imports(folder: Path, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The modules ``crontask run`` (listening, so the API and the page load too) imported
    by the time it said ``crontask started``."""
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    proc, log = start_crontask_run(folder, "--listen", f"127.0.0.1:{free_port()}")
    try:
        wait_for("crontask started", lambda: "crontask started" in log.read_text(), 60)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    lines = log.read_text().splitlines()
    assert proc.returncode == 0, lines[-20:]
    # Whatever it imported at its stop came after the line the test waited for: cut there.
    upto = next(i for i, line in enumerate(lines) if "crontask started" in line)
    return {
        line.rpartition("|")[2].strip() for line in lines[:upto] if line.startswith("import time:")
    }


def loaded(imported: set[str]) -> list[str]:
    return sorted(m for m in imported if any(m == h or m.startswith(f"{h}.") for h in HEAVY))


def test_a_start_without_kubernetes_on_a_store_at_head_imports_neither(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    statedir.prepare(state)
    open_store(sqlite_url(state), writer=True).close()  # made, at the schema's head
    imported = started_imports(tmp_path, monkeypatch)
    assert "reconciler.api.routing" in imported  # importtime named them; the API was loaded
    assert loaded(imported) == []
