"""A tasks folder (``crontask run PATH``) that a user other than root and crontask's own may
change (``statedir``'s rule, applied to the root and to every folder on its path) is read as
before, with one warning line at the start of ``crontask run`` naming it (``checked_roots``,
called once from ``controller.wiring``; ``validate`` and ``plan`` run nothing, and say nothing):
whoever may write it can add a command task that runs as crontask's user. A warning, not a
refusal: such setups work today. Tests run as root: "another user" is a folder chowned to
nobody."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.sources.rootpaths import checked_roots

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
SAYS = "others may change the tasks folder"


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if SAYS in r.getMessage()]


def fields(record: logging.LogRecord) -> dict[str, str]:
    found: dict[str, str] = getattr(record, "fields", {})
    return found


def folder(path: Path, mode: int) -> Path:
    path.mkdir(parents=True)
    path.chmod(mode)
    return path


def test_a_folder_anyone_may_write_is_read_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tasks = folder(tmp_path / "tasks", 0o777)
    with caplog.at_level(logging.WARNING):
        checked_roots([tasks])
        checked_roots([tasks])  # a second look at it: said once
    said = warnings_of(caplog)
    assert len(said) == 1, caplog.records
    assert fields(said[0])["path"] == str(tasks)
    assert "0777" in fields(said[0])["why"]


def test_a_sticky_folder_anyone_may_write_is_warned_of_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Sticky keeps others from moving a file, not from adding one: a task."""
    tasks = folder(tmp_path / "tasks", 0o1777)
    with caplog.at_level(logging.WARNING):
        checked_roots([tasks])
    assert len(warnings_of(caplog)) == 1


@as_root
def test_a_folder_of_another_user_is_warned_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tasks = folder(tmp_path / "tasks", 0o755)
    os.chown(tasks, NOBODY, NOBODY)
    with caplog.at_level(logging.WARNING):
        checked_roots([tasks])
    (said,) = warnings_of(caplog)
    assert f"owned by uid {NOBODY}" in fields(said)["why"]


def test_a_folder_on_its_path_others_may_write_is_warned_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ww = folder(tmp_path / "ww", 0o777)
    tasks = folder(ww / "tasks", 0o755)
    (tmp_path / "link").symlink_to(tasks)  # given through a link: where it leads counts
    with caplog.at_level(logging.WARNING):
        checked_roots([tasks, tmp_path / "link"])
    said = warnings_of(caplog)
    assert [fields(r)["path"] for r in said] == [str(tasks), str(tmp_path / "link")]
    assert all(f"{ww}, on its path" in fields(r)["why"] for r in said)


def test_a_private_folder_a_file_and_a_missing_path_say_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tasks = folder(tmp_path / "tasks", 0o755)
    (tmp_path / "one.yaml").write_text("")
    with caplog.at_level(logging.WARNING):
        checked_roots([tasks, tmp_path / "one.yaml", tmp_path / "missing"])
    assert warnings_of(caplog) == []


@pytest.mark.slow
def test_crontask_run_starts_and_says_it_in_one_line(tmp_path: Path) -> None:
    tasks = folder(tmp_path / "tasks", 0o777)
    command = [sys.executable, "-m", "reconciler", "run", "tasks", "--allow-empty"]
    proc = subprocess.Popen(
        [*command, "--state-dir", "state", "--listen", "off"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
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
    said = [line for line in lines if SAYS in line]
    assert len(said) == 1, lines
    assert "level=warning" in said[0]
    assert f"path={tasks.name}" in said[0]


def test_validate_reads_such_a_folder_without_the_warning(tmp_path: Path) -> None:
    """Only ``crontask run`` runs what the folder holds: ``validate`` (a CI check) says nothing."""
    folder(tmp_path / "tasks", 0o777)
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "tasks"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert SAYS not in done.stdout + done.stderr
