"""The real ``crontask run`` and ``crontask runs`` on state directories and run stores they
cannot or must not use: one line on stderr and exit status 2 (what the user gave) or 1 (what is
unavailable), never a traceback or a password; and what ``run`` creates is private. Tests run
as root: "another user" is a folder chowned to nobody."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.store import open_store, sqlite_url
from tests.faults import disk

NOBODY = 65534
# "Another user" is a folder chowned to nobody, which only root can do.
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
TASK = """\
apiVersion: crontask.dev/v1
kind: CronTask
metadata: {name: planted}
spec: {schedule: "* * * * *", command: ["true"]}
"""


def crontask(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRONTASK_")}
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def run(state: str, *extra: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    (cwd / "tasks").mkdir(exist_ok=True)
    return crontask("run", "tasks", "--state-dir", state, "--listen", "off", *extra, cwd=cwd)


def refused(done: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    assert done.returncode == code, done.stderr
    assert done.stderr.startswith("crontask: "), done.stderr
    assert done.stderr.count("\n") == 1, done.stderr  # one line
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr
    return done.stderr


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def started_and_stopped(cwd: Path, *argv: str) -> list[str]:
    """Start ``crontask run`` (with a user's usual umask), then stop it once it has started;
    its log lines up to the start."""
    (cwd / "tasks").mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "run", "tasks", "--listen", "off", *argv],
        cwd=cwd,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.umask(0o022),
    )
    assert proc.stderr is not None
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if "crontask started" in line:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0, "".join(lines)
    return lines


def test_run_makes_a_state_directory_others_may_read_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    open_store(sqlite_url(state), writer=True).close()
    (state / "runs.db").chmod(0o644)
    lines = started_and_stopped(tmp_path, "--allow-empty", "--state-dir", "state")
    assert mode(state) == 0o700
    assert mode(state / "runs.db") == 0o600
    warnings = [line for line in lines if "level=warning" in line]
    assert len(warnings) == 2, lines  # the directory, the database
    assert all("readable by others: made private" in line for line in warnings)


@as_root
def test_run_refuses_a_state_directory_another_user_placed(tmp_path: Path) -> None:
    # The scene of the review: rev1 made .crontask, with a task in api-tasks for root to run
    # and runs.db linked to where rev1 wants root's database.
    state = tmp_path / "planted"
    (state / "api-tasks").mkdir(parents=True)
    (state / "api-tasks" / "default.planted.yaml").write_text(TASK)
    (state / "runs.db").symlink_to(tmp_path / "target.db")
    for path in (state, state / "api-tasks"):
        os.chown(path, NOBODY, NOBODY)
    err = refused(run("planted", cwd=tmp_path), 2, "refusing state directory", "uid 65534")
    assert "planted" in err
    assert not (tmp_path / "target.db").exists()


def test_run_refuses_a_runs_db_link_and_a_state_directory_others_may_write(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "runs.db").symlink_to(tmp_path / "target.db")
    refused(run("state", cwd=tmp_path), 2, "symbolic link", "runs.db")
    assert not (tmp_path / "target.db").exists()

    (tmp_path / "open").mkdir()
    (tmp_path / "open").chmod(0o777)
    refused(run("open", cwd=tmp_path), 2, "group or others may write it")

    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    refused(run("link", cwd=tmp_path), 2, "symbolic link")


@as_root
def test_run_refuses_a_db_folder_of_another_user(tmp_path: Path) -> None:
    (tmp_path / "theirs").mkdir(mode=0o700)
    os.chown(tmp_path / "theirs", NOBODY, NOBODY)
    db = f"sqlite:///{tmp_path}/theirs/runs.db"
    refused(run("state", "--db", db, cwd=tmp_path), 2, "refusing run store folder")
    assert not (tmp_path / "theirs" / "runs.db").exists()


def test_a_state_directory_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    refused(run("a-file", cwd=tmp_path), 2, "not a directory")
    refused(run("/proc/nope/x", cwd=tmp_path), 2, "/proc/nope")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


BAD_URLS = [
    ("postgresql://u:hunter2pw@host:badport/db", 2),
    ("sqlite3://x/db", 2),
    ("mysql://u:hunter2pw@localhost/db", 2),
    ("sqlite://", 2),
    ("postgresql+psycopg://u:hunter2pw@127.0.0.1:{port}/db", 1),
]


@pytest.mark.parametrize(("url", "code"), BAD_URLS)
def test_a_bad_or_unreachable_db_url_is_one_line_without_the_password(
    tmp_path: Path, url: str, code: int
) -> None:
    done = crontask("runs", "--db", url.format(port=closed_port()), cwd=tmp_path)
    assert "hunter2pw" not in done.stderr + done.stdout
    refused(done, code)


@pytest.mark.parametrize(("url", "code"), [BAD_URLS[0], BAD_URLS[-1]])
def test_run_says_the_same_in_the_same_way(tmp_path: Path, url: str, code: int) -> None:
    """``run`` reports through the same code as ``runs`` (``store_errors``): one bad URL and
    one store that does not answer are enough to show it is used (``run`` starts slower)."""
    done = run("state", "--db", url.format(port=closed_port()), cwd=tmp_path)
    assert "hunter2pw" not in done.stderr + done.stdout
    refused(done, code)


@as_root
def test_runs_reads_another_users_store_and_changes_nothing(tmp_path: Path) -> None:
    state = tmp_path / "theirs"
    open_store(sqlite_url(state), writer=True).close()
    for path in (state, *state.iterdir()):
        os.chown(path, NOBODY, NOBODY)
    state.chmod(0o755)
    (state / "runs.db").chmod(0o644)
    before = sorted((p.name, mode(p), os.lstat(p).st_uid) for p in state.iterdir())

    done = crontask("runs", "--state-dir", "theirs", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "no runs recorded" in done.stdout
    assert mode(state) == 0o755
    assert sorted((p.name, mode(p), os.lstat(p).st_uid) for p in state.iterdir()) == before


def test_runs_of_a_missing_db_file_creates_nothing(tmp_path: Path) -> None:
    refused(crontask("runs", "--db", f"sqlite:///{tmp_path}/none.db", cwd=tmp_path), 1)
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_state_directory_on_a_full_or_read_only_disk_is_one_line(
    tmp_path: Path, fault: str
) -> None:
    disk.require("full")  # both are a tmpfs mounted on the state folder
    small = disk.SmallDisk(tmp_path / "state")
    try:
        small.path.chmod(0o700)
        if fault == "full":
            small.fill()
        else:
            subprocess.run(["mount", "-o", "remount,ro", str(small.path)], check=True)
        done = run("state", cwd=tmp_path)
    finally:
        small.unmount()
    refused(done, 1, "disk is full" if fault == "full" else "Read-only file system")


def test_run_creates_a_private_state_directory_and_a_second_run_on_it_is_refused(
    tmp_path: Path,
) -> None:
    """Two would check out git revisions over each other's and delete the other's files. (One
    test: the first run is the one that creates the state directory, with a user's usual
    umask, so it shows that too, without a start of its own.)"""
    (tmp_path / "tasks").mkdir()
    first = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "run", "tasks", "--listen", "off", "--allow-empty"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.umask(0o022),
    )
    assert first.stderr is not None
    try:
        for line in first.stderr:
            if "crontask started" in line:
                break
        second = run(".crontask", "--allow-empty", cwd=tmp_path)
        refused(second, 2, "in use by another crontask", f"pid {first.pid}", "--state-dir")
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 0
    state = tmp_path / ".crontask"  # the default, which the first run created
    assert mode(state) == 0o700
    assert mode(state / "runs.db") == 0o600
    # Once the first has stopped, the state directory is free again.
    assert started_and_stopped(tmp_path, "--allow-empty")
