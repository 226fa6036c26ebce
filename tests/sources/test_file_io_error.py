"""A file whose read fails (an I/O error) is a definition error of its own: it keeps its
tasks, the other files are read, and ``validate`` says where, in one line.

``/proc/self/mem`` is a real regular file whose read at offset 0 fails with EIO, in any
process: the unmapped page 0. A task file that turns into one (a failing disk) cannot be
made without privileges, so that case alone swaps ``os.read`` for one file."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.sources.files import DirectorySource
from reconciler.sources.reading import Unreadable, read_file, resolve_root
from tests.controller.test_reconcile import doc

EIO_FILE = Path("/proc/self/mem")
needs_proc_mem = pytest.mark.skipif(not EIO_FILE.exists(), reason="no /proc/self/mem")


def keys(source: DirectorySource) -> set[str]:
    return {d.key.partition("/")[2] for d in source.definitions()}


@needs_proc_mem
def test_a_read_that_fails_is_unreadable() -> None:
    with pytest.raises(Unreadable) as caught:
        read_file(EIO_FILE, limit=1024, root=resolve_root(EIO_FILE), root_label="the file")
    assert caught.value.message == "cannot read: Input/output error"


@needs_proc_mem
def test_the_other_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(doc("a"))
    source = DirectorySource([tmp_path, EIO_FILE])
    source.refresh(None)
    assert keys(source) == {"a"}
    assert [(e.location.path, e.location.line, e.message) for e in source.errors()] == [
        (str(EIO_FILE), 1, "cannot read: Input/output error")
    ]


@needs_proc_mem
def test_validate_and_plan_say_where_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(doc("a"))
    for argv in (
        ["validate", str(tmp_path), str(EIO_FILE)],
        ["plan", str(tmp_path), str(EIO_FILE), "--against", str(tmp_path), str(tmp_path)],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", *argv], capture_output=True, text=True
        )
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert f"{EIO_FILE}:1:1: cannot read: Input/output error" in done.stdout


def test_a_file_that_fails_to_read_keeps_its_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.yaml").write_text(doc("a"))
    (tmp_path / "b.yaml").write_text(doc("b"))
    source = DirectorySource([tmp_path])
    source.refresh(None)
    failing = os.path.realpath(tmp_path / "a.yaml")
    real_read = os.read

    def read(fd: int, size: int) -> bytes:
        if os.readlink(f"/proc/self/fd/{fd}") == failing:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_read(fd, size)

    monkeypatch.setattr(os, "read", read)
    (tmp_path / "a.yaml").write_text(doc("a", "0 3 * * *"))
    (tmp_path / "b.yaml").write_text(doc("b", "0 4 * * *"))
    (tmp_path / "c.yaml").write_text(doc("c"))
    source.refresh(None)  # no OSError: the pass goes on
    schedules = {d.key: d.task.spec.schedule for d in source.definitions()}
    assert schedules == {
        "default/a": "* * * * *",
        "default/b": "0 4 * * *",
        "default/c": "* * * * *",
    }
    assert [(e.location.path, e.message) for e in source.errors()] == [
        (str(tmp_path / "a.yaml"), "cannot read: Input/output error")
    ]
