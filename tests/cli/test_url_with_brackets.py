"""A ``--db`` (or ``$CRONTASK_DB``) or ``--git`` URL whose password holds a ``[`` or ``]``
(which ``urlsplit`` refuses, quoting the part between them) is said in one line, never a
traceback, and no part of the password is shown."""

from __future__ import annotations

from pathlib import Path

from tests.cli.hostile import Finished, assert_one_line_error, crontask

PASSWORD = "Xy[Secr3tPart]Zw"  # noqa: S105 - a test value
# Nothing listens on port 1: the store is unavailable at once.
DB_URL = f"postgresql+psycopg://u:{PASSWORD}@127.0.0.1:1/db"


def assert_no_secret(text: str) -> None:
    assert "Secr3tPart" not in text, text


def test_runs_says_an_unavailable_store_without_its_password() -> None:
    done = crontask("runs", timeout=60, env={"CRONTASK_DB": DB_URL})
    assert_one_line_error(done.code, done.err, "run store unavailable")
    assert_no_secret(done.err + done.out)


def test_run_says_an_unavailable_store_without_its_password(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    done = crontask(
        "run",
        str(tmp_path / "tasks"),
        "--state-dir",
        str(tmp_path / "state"),
        "--listen",
        "off",
        "--db",
        DB_URL,
        timeout=60,
    )
    assert_one_line_error(done.code, done.err, "run store unavailable")
    assert_no_secret(done.err + done.out)


def run_git(tmp_path: Path, url: str) -> Finished:
    state = str(tmp_path / "state")
    return crontask("run", "--state-dir", state, "--listen", "off", "--git", url, timeout=60)


def test_a_git_url_urlsplit_refuses_is_a_usage_error(tmp_path: Path) -> None:
    done = run_git(tmp_path, f"https://alice:{PASSWORD}@127.0.0.1:1/x.git")
    assert done.code == 2, done.err
    assert "Traceback" not in done.err
    assert done.err.splitlines()[-1].startswith("crontask run: error: argument --git: ")
    assert "%5B" in done.err
    assert_no_secret(done.err + done.out)
    assert not (tmp_path / "state").exists()  # refused before anything started


def test_a_git_url_with_a_query_is_a_usage_error_without_its_values(tmp_path: Path) -> None:
    """git appends /info/refs to the URL as written: after a query the server never sees it,
    and crontask fetched the URL with its values redacted besides. It could never work."""
    done = run_git(tmp_path, "https://127.0.0.1:1/x.git?private_token=glpat-Secr3tPart")
    assert done.code == 2, done.err
    assert "has no query or fragment" in done.err
    assert "--git-token-file" in done.err
    assert_no_secret(done.err + done.out)
