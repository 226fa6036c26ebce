"""``crontask runs`` given a directory for its SQLite file says so, as the usage error it is
(exit status 2, as ``crontask run`` refuses one), instead of "no run store at DIR" (1), which
sent one to look for a missing store. The real ``crontask`` runs as a subprocess."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import crontask_cli


def test_db_url_naming_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "somedir"
    folder.mkdir()
    done = crontask_cli("runs", "--db", f"sqlite:///{folder}")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"crontask: run store sqlite:///{folder}: {folder} is a directory, not a SQLite file\n"
    )


def test_state_directory_whose_runs_db_is_a_directory(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "runs.db").mkdir(parents=True)
    done = crontask_cli("runs", "--state-dir", str(state))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"crontask: run store in the state directory: {state / 'runs.db'} is a directory,"
        " not a SQLite file\n"
    )
