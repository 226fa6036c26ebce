"""A refusal of what a command was given is said before the command loads what it would work
with: ``crontask run``'s state directory and ``--db`` before the Kubernetes client (the
runtime's), ``validate``'s and ``next``'s missing path before the definitions' stack (YAML,
pydantic's models), ``runs``' missing store before the store's modules and SQLAlchemy. The
real command, under ``python -X importtime``, which names every module imported; the message
and the exit status are those the command always gave."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

KUBERNETES = ("kubernetes", "reconciler.controller.runtime", "reconciler.sources.kubernetes")
DEFINITIONS = ("yaml", "reconciler.cli.definitions", "reconciler.core.model")
STORE = ("sqlalchemy", "reconciler.store", "reconciler.cli.store_errors")


def said_and_imported(*argv: str, cwd: Path, code: int) -> tuple[str, set[str]]:
    """Run ``crontask ARGV``, which must end with exit status ``code``: what it said on
    stderr, and the modules it imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRONTASK_")}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "reconciler", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stderr.splitlines()
    said = [line for line in lines if not line.startswith("import time:")]
    assert done.returncode == code, done.stderr
    imported = {
        line.rpartition("|")[2].strip() for line in lines if line.startswith("import time:")
    }
    assert "reconciler.cli.main" in imported  # importtime did name the modules
    return "\n".join(said), imported


def loaded(imported: set[str], stack: tuple[str, ...]) -> list[str]:
    return sorted(m for m in imported if any(m == s or m.startswith(f"{s}.") for s in stack))


def test_a_state_directory_that_is_a_file_is_refused_before_the_kubernetes_client(
    tmp_path: Path,
) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "state").write_text("")
    said, imported = said_and_imported(
        "run", "tasks", "--state-dir", "state", "--listen", "off", cwd=tmp_path, code=2
    )
    assert said.endswith("crontask: refusing state directory state: it is not a directory"), said
    assert loaded(imported, KUBERNETES) == []


def test_a_db_url_that_names_no_store_is_refused_before_the_kubernetes_client(
    tmp_path: Path,
) -> None:
    (tmp_path / "tasks").mkdir()
    said, imported = said_and_imported(
        "run", "tasks", "--db", "notaurl", "--listen", "off", cwd=tmp_path, code=2
    )
    assert said.endswith("crontask: run store ***: not a run store URL: Could not parse "
                         "SQLAlchemy URL from given URL string"), said  # fmt: skip
    assert loaded(imported, KUBERNETES) == []
    assert not (tmp_path / ".crontask" / "runs.db").exists()  # --db's store, not the folder's


@pytest.mark.parametrize("command", ["validate", "next"])
def test_a_missing_path_is_refused_before_the_definitions_stack(
    command: str, tmp_path: Path
) -> None:
    said, imported = said_and_imported(command, "nope", cwd=tmp_path, code=2)
    assert said == "crontask: no such file or directory: nope"
    assert loaded(imported, DEFINITIONS) == []


def test_validate_names_every_missing_path_before_the_definitions_stack(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    said, imported = said_and_imported("validate", "tasks", "a", "b", cwd=tmp_path, code=2)
    assert said == "crontask: no such file or directory: a, b"
    assert loaded(imported, DEFINITIONS) == []


def test_runs_without_a_store_is_refused_before_the_store_is_imported(tmp_path: Path) -> None:
    said, imported = said_and_imported("runs", "--state-dir", "nope", cwd=tmp_path, code=1)
    assert said == "crontask: no run store at nope/runs.db (see --state-dir)"
    assert loaded(imported, STORE) == []
    assert not (tmp_path / "nope").exists()  # a reader makes nothing


def test_runs_reads_a_file_that_is_there(tmp_path: Path) -> None:
    """The control of the one above: with a file there, the store's modules do load (the
    probe sees them), and the file is read (an empty SQLite database: no store in it)."""
    (tmp_path / "state").mkdir()
    said_and_imported("runs", "--state-dir", "state", cwd=tmp_path, code=1)  # no store yet
    subprocess.run(
        [sys.executable, "-c", "import sqlite3,sys; sqlite3.connect(sys.argv[1]).close()",
         str(tmp_path / "state" / "runs.db")],
        check=True,
    )  # fmt: skip
    said, imported = said_and_imported("runs", "--state-dir", "state", cwd=tmp_path, code=1)
    assert said == "crontask: no run store in that database (no crontask run has used it)"
    assert "sqlalchemy" in imported
