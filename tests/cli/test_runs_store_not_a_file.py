"""``crontask runs`` on a state directory whose ``runs.db`` is there but is no file SQLite can
hold a store in says what it is. It said "no run store at ...", which the README explains as
no ``crontask run`` having used the directory: the operator looked for the wrong cause."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.helpers import crontask_cli


def _fifo(db: Path) -> None:
    os.mkfifo(db, 0o600)


def _socket(db: Path) -> None:
    with socket.socket(socket.AF_UNIX) as bound:
        bound.bind(str(db))


def _dangling(db: Path) -> None:
    db.symlink_to(db.with_name("elsewhere.db"))


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (_fifo, "is not a regular file (a FIFO)"),
        (_socket, "is not a regular file (a socket)"),
        (_dangling, "is a symbolic link to nothing, not a run store"),
    ],
)
def test_crontask_runs_says_what_is_at_the_path(make: object, said: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    db = state / "runs.db"
    assert callable(make)
    make(db)
    done = crontask_cli("runs", "--state-dir", str(state))
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == f"crontask: {db} {said}", done.stderr
    assert "no run store" not in done.stderr


def test_a_missing_file_is_still_no_run_store(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    done = crontask_cli("runs", "--state-dir", str(state))
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"crontask: no run store at {state}/runs.db"), done.stderr
