"""File names that are not UTF-8 (a Latin-1 name, a file made by a tool that writes raw bytes)
against ``crontask validate`` and ``crontask run``, as real subprocesses."""

from __future__ import annotations

import os
from pathlib import Path

from tests.e2e.conftest import Crontask
from tests.hostile.test_validate import GOOD, SECONDS, validate


def test_a_file_name_not_utf8_is_one_error_and_the_rest_is_read(tmp_path: Path) -> None:
    # One line naming it, its bytes shown as they are; the good task next to it is read.
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "good.yaml").write_text(GOOD)
    with open(os.fsencode(folder) + b"/caf\xe9.yaml", "w") as file:
        file.write(GOOD.replace("name: good", "name: latin"))
    run = validate(["tasks"], tmp_path)
    assert run.code == 1, run.err
    assert "Traceback" not in run.err
    assert run.out.splitlines() == [
        "tasks/caf\\xe9.yaml:1:1: file name is not UTF-8: not read (rename it)"
    ]
    assert ", 1 task)" in run.err
    assert run.cpu_seconds < SECONDS


def doc(name: str) -> str:
    return GOOD.replace("name: good", f"name: {name}")


def test_a_file_name_not_utf8_does_not_stop_a_running_crontask(tmp_path: Path) -> None:
    """watchfiles cannot report such a name: each batch of events holding one fails. The
    watch is made again (one warning line, no traceback) and the folder read whole; the files
    of that batch and every later change are read, without waiting for the resync."""
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "a.yaml").write_text(doc("a"))
    app = Crontask(tmp_path, folder, ["--resync", "1h"]).start()
    try:
        app.wait_log("task=default/a")
        with open(os.fsencode(folder) + b"/notes-\xff.txt", "w") as file:
            file.write("not a task, and no UTF-8 name\n")
        (folder / "b.yaml").write_text(doc("b"))
        app.wait_log("file watch failed")
        app.wait_log("task=default/b")
        (folder / "c.yaml").write_text(doc("c"))
        app.wait_log("task=default/c")
        assert app.proc is not None
        assert app.proc.poll() is None
    finally:
        assert app.stop() == 0
    assert "Traceback" not in app.log()
