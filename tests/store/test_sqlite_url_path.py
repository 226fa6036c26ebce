"""``sqlite_url(state_dir)`` names ``state_dir/runs.db`` whatever characters the path holds.

The path went into the ``sqlite:///`` URL as it was, and SQLAlchemy reads a URL: ``%41`` was
decoded (``--state-dir /x/pd%41`` kept its history in ``/x/pdA/runs.db``, shared unnoticed with
a crontask whose state directory is ``/x/pdA``), a ``?`` began a query string (refused as a
``--db`` option), and so on. The path is quoted now: SQLAlchemy's decoding gives it back whole.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.store import DB_FILENAME, RunQuery, open_store, sqlite_url
from tests.cli.test_state_dir import started_and_stopped

from ._records import rec

NAMES = ["pd%41", "pd%2541", "p?x=1", "a#b", "with space", "a+b@c:d", "é;&=", "100%"]


@pytest.mark.parametrize("name", NAMES)
def test_the_store_is_the_state_directorys_own_file(tmp_path: Path, name: str) -> None:
    state = tmp_path / name
    store = open_store(sqlite_url(state), writer=True)
    try:
        store.save_many([rec("ops/" + str(len(name)), 0)])
    finally:
        store.close()
    assert (state / DB_FILENAME).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing made beside it
    reader = open_store(sqlite_url(state), existing=True)
    try:
        assert [r.task for r in reader.query(RunQuery()).items] == ["ops/" + str(len(name))]
    finally:
        reader.close()


def test_two_state_directories_a_decoding_would_join_keep_two_stores(tmp_path: Path) -> None:
    for name in ("pd%41", "pdA"):
        store = open_store(sqlite_url(tmp_path / name), writer=True)
        try:
            store.save_many([rec("ops/" + name, 0)])
        finally:
            store.close()
    for name in ("pd%41", "pdA"):
        reader = open_store(sqlite_url(tmp_path / name), existing=True)
        try:
            assert [r.task for r in reader.query(RunQuery()).items] == ["ops/" + name]
        finally:
            reader.close()


@pytest.mark.slow
def test_a_store_crontask_0_4_kept_elsewhere_is_named_not_replaced_by_an_empty_one(
    tmp_path: Path,
) -> None:
    """0.4.0 kept the history of ``--state-dir pd%41`` in ``pdA/runs.db``. Started on a new,
    empty store, 0.5.0 would show no history and catch up no missed slot: it refuses, naming
    where the store is and what to do, until the file is moved (or an empty one made)."""
    old = tmp_path / "pdA"
    store = open_store(sqlite_url(old), writer=True)
    store.save_many([rec("ops/a", 0)])
    store.close()
    (tmp_path / "tasks").mkdir()
    argv = [sys.executable, "-m", "reconciler", "run", "tasks", "--listen", "off"]
    done = subprocess.run(
        [*argv, "--state-dir", "pd%41"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    [said] = done.stderr.splitlines()
    new = tmp_path / "pd%41"
    assert said.startswith(f"crontask: refusing the state directory {new}: its run store is at ")
    assert f"{old}/runs.db" in said
    assert f"to {new}/runs.db" in said
    assert not (tmp_path / "pd%41" / "runs.db").exists()
    # Moved: the history is there.
    os.replace(old / "runs.db", new / "runs.db")
    moved = open_store(sqlite_url(new), existing=True)
    try:
        assert len(moved.query(RunQuery()).items) == 1
    finally:
        moved.close()
    # Both there (a rollback to 0.4.0 made the old one again): this one, and a warning.
    open_store(sqlite_url(old), writer=True).close()
    lines = started_and_stopped(tmp_path, "--state-dir", "pd%41")
    [warned] = [line for line in lines if "crontask 0.4.0 kept" in line]
    assert f'other="{old}/runs.db"' in warned or f"other={old}/runs.db" in warned


@pytest.mark.slow
def test_no_word_of_0_4_when_the_decoded_folder_is_a_state_directory_of_its_own(
    tmp_path: Path,
) -> None:
    """pdA is another crontask's state directory (its lock file says so), and pd%41 has its
    own store (the README's empty runs.db): nothing of 0.4.0 to tell at every start."""
    other = tmp_path / "pdA"
    open_store(sqlite_url(other), writer=True).close()
    (other / "lock").write_text("1\n")
    mine = tmp_path / "pd%41"
    open_store(sqlite_url(mine), writer=True).close()
    (tmp_path / "tasks").mkdir()
    lines = started_and_stopped(tmp_path, "--state-dir", "pd%41")
    assert not [line for line in lines if "0.4.0" in line]
