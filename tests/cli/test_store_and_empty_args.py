"""What the commands were given, said in one line where it cannot be used: a run store that is
no SQLite database, a CA bundle ($SSL_CERT_FILE) that cannot be read, a server whose host is no
IDNA name, an empty path; and ``--since 0``, which is the last 0 seconds, and an empty
$CRONTASK_AUTH_CONFIG, which is no file."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import open_store, sqlite_url
from tests.cli.hostile import assert_one_line_error, cli
from tests.cli.test_state_dir import started_and_stopped
from tests.helpers import free_port

NOT_A_STORE = "is not a crontask run store (sqlite: file is not a database)"


def crontask(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


@pytest.fixture
def not_a_db(tmp_path: Path) -> Path:
    """A file with SQLite's header and nothing a database holds (mode 0600: ``run`` would
    make it so anyway)."""
    path = tmp_path / "state" / "runs.db"
    path.parent.mkdir(mode=0o700)
    path.write_bytes(b"SQLite format 3\0" + bytes(5000))
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ("runs", "--state-dir", "state"),
        ("runs", "--db", "sqlite:///{db}"),
        ("run", "tasks", "--listen", "off", "--db", "sqlite:///{db}"),
        ("run", "tasks", "--listen", "off", "--state-dir", "state"),
    ],
)
def test_a_file_that_is_no_database_is_one_line(
    not_a_db: Path, tmp_path: Path, argv: tuple[str, ...]
) -> None:
    (tmp_path / "tasks").mkdir()
    done = crontask(*(a.format(db=not_a_db) for a in argv), cwd=tmp_path)
    shown = "state/runs.db" if "--state-dir" in argv else str(not_a_db)
    assert_one_line_error(done.returncode, done.stderr, f"{shown} {NOT_A_STORE}")


@pytest.mark.parametrize("bundle", ["missing.pem", "garbage.pem", "."])
def test_a_ca_bundle_that_cannot_be_read_is_one_line(
    bundle: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "garbage.pem").write_text("garbage\n")
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / bundle))
    monkeypatch.delenv("CRONTASK_TOKEN", raising=False)
    # httpx reads the bundle for any client, one for http:// too.
    code = cli("tasks", "--server", "http://127.0.0.1:9")
    err = capsys.readouterr().err
    assert_one_line_error(code, err, f"crontask: cannot read $SSL_CERT_FILE ({tmp_path / bundle})")


@pytest.mark.parametrize("host", ["xn--a.com", "XN--A.com", "xn--.example", "a\u00adb.com"])
def test_a_host_that_is_no_idna_name_is_a_usage_error(
    host: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("tasks", "--server", f"http://{host}") == 2
    err = capsys.readouterr().err
    assert "is not a valid IDNA (internationalized) name" in err
    assert "Traceback" not in err
    monkeypatch.setenv("CRONTASK_SERVER", f"http://{host}")
    assert cli("tasks") == 2
    assert "$CRONTASK_SERVER: the host of" in capsys.readouterr().err


def _one_run(state: Path, task: str) -> RunRecord:
    """A run of ``task`` five minutes ago that succeeded, in the store of ``state``."""
    store = open_store(sqlite_url(state))
    at = datetime.now(UTC) - timedelta(minutes=5)
    record = RunRecord(
        id=run_id(task, at),
        task=task,
        scheduled_at=at,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.SUCCEEDED,
    )
    store.save_many([record])
    store.close()
    return record


def test_since_zero_is_no_time_at_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = _one_run(tmp_path, "default/t")
    assert cli("runs", "--state-dir", str(tmp_path), "--since", "1h") == 0
    assert record.id in capsys.readouterr().out
    assert cli("runs", "--state-dir", str(tmp_path), "--since", "0") == 0
    assert capsys.readouterr().out == "no runs match\n"


def test_empty_answer_says_whether_a_filter_hid_the_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A task that ran, asked for its failures: none match, which is not "never ran"."""
    _one_run(tmp_path, "ns/ok")
    state = str(tmp_path)
    assert cli("runs", "ns/ok", "--state-dir", state, "--status", "failed") == 0
    assert capsys.readouterr().out == "no runs match for ns/ok\n"
    assert cli("runs", "ns/ok", "--state-dir", state, "--trigger", "manual") == 0
    assert capsys.readouterr().out == "no runs match for ns/ok\n"
    assert cli("runs", "ns/other", "--state-dir", state) == 0
    assert capsys.readouterr().out == "no runs recorded for ns/other\n"


@pytest.mark.parametrize(
    "argv",
    [
        ("runs", "--state-dir", ""),
        ("run", "tasks", "--listen", "off", "--state-dir", ""),
        ("run", "tasks", "--listen", "off", "--git-token-file", ""),
        ("validate", ""),
    ],
)
def test_an_empty_path_is_a_usage_error(tmp_path: Path, argv: tuple[str, ...]) -> None:
    (tmp_path / "tasks").mkdir()
    tmp_path.chmod(0o755)
    done = crontask(*argv, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "''" in done.stderr
    assert "Traceback" not in done.stderr
    assert oct(tmp_path.stat().st_mode & 0o777) == oct(0o755)  # the current folder untouched
    assert not (tmp_path / "runs.db").exists()


def test_an_empty_auth_config_variable_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRONTASK_AUTH_CONFIG", "")
    assert os.environ["CRONTASK_AUTH_CONFIG"] == ""  # what the started process inherits
    address = f"127.0.0.1:{free_port()}"  # the file is read for the API only
    lines = started_and_stopped(
        tmp_path, "--allow-empty", "--state-dir", "state", "--listen", address
    )
    assert any("crontask started" in line for line in lines)
