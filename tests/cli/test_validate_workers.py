"""`crontask validate` reading on several processes, when something goes wrong: a worker that
dies, and Ctrl-C. Each runs the real command in a process of its own, with one line of Python
in front of it that makes a worker misbehave on one file (the workers are forked, so they
inherit it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from reconciler.sources.limits import PARALLEL_MIN_FILES

GOOD = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {{name: t{i}}}\n"
    'spec: {{schedule: "@daily", command: {{args: ["true"]}}}}\n'
)


FILES = PARALLEL_MIN_FILES + 10
HELD = f"t{FILES - 1:04d}.yaml"  # the last file, so the last share: every other share is read


def folder(tmp_path: Path) -> Path:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    for i in range(FILES):
        (tasks / f"t{i:04d}.yaml").write_text(GOOD.format(i=i))
    return tasks


def validate_with(tmp_path: Path, on_file: str, tasks: Path) -> subprocess.Popen[str]:
    """`crontask validate -j2 TASKS`, running ``on_file`` (Python) in the worker that reads
    ``HELD``. Every file read leaves a mark in ``read/``. The parent, and only the parent,
    notes a SIGINT in the file ``interrupted`` before it raises KeyboardInterrupt as Python's
    own handler does."""
    script = (
        "import os, signal, time\n"
        "from pathlib import Path\n"
        "parent = os.getpid()\n"
        "def interrupted(signum, frame):\n"
        "    if os.getpid() == parent:\n"
        "        Path('interrupted').touch()\n"
        "    raise KeyboardInterrupt\n"
        "signal.signal(signal.SIGINT, interrupted)\n"
        "Path('read').mkdir()\n"
        "from reconciler.sources import survey\n"
        "read = survey._report\n"
        "def report(source, path):\n"
        f"    if path.name == {HELD!r}:\n"
        f"{''.join('        ' + line + chr(10) for line in on_file.splitlines())}"
        "    else:\n"
        "        Path('read', path.name).touch()\n"
        "    return read(source, path)\n"
        "survey._report = report\n"
        "from reconciler.cli.main import main\n"
        f"main(['validate', '-j2', {str(tasks)!r}])\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        start_new_session=True,  # a process group of its own, for the Ctrl-C below
    )


def test_a_worker_that_dies_is_a_clear_error(tmp_path: Path) -> None:
    tasks = folder(tmp_path)
    child = validate_with(tmp_path, "os.kill(os.getpid(), signal.SIGKILL)", tasks)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 2, err
    assert out == ""
    assert err.startswith("crontask: a process reading the files ended: ")
    assert "(-j 1 reads them in this one)" in err
    assert "Traceback" not in err


def test_ctrl_c_stops_the_survey_without_a_traceback_per_worker(tmp_path: Path) -> None:
    """Ctrl-C while one worker is in the middle of its share and the other, its shares done,
    waits for more: the command ends with 130 and not a traceback from either worker."""
    tasks = folder(tmp_path)
    others = FILES - 1
    reached, go = tmp_path / "reached", tmp_path / "go"
    hold = (
        f"while len(os.listdir('read')) < {others}:  # every other file read: a worker idles\n"
        "    time.sleep(0.01)\n"
        f"Path({str(reached)!r}).touch()\n"
        f"while not Path({str(go)!r}).exists():\n"
        "    time.sleep(0.01)"
    )
    child = validate_with(tmp_path, hold, tasks)
    try:
        deadline = time.monotonic() + 60
        while not reached.exists():
            assert time.monotonic() < deadline, child.stderr.read() if child.stderr else ""
            time.sleep(0.01)
        os.killpg(child.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        while not (tmp_path / "interrupted").exists():  # the parent took it
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        go.touch()  # the held share ends
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert "Traceback" not in err
    assert "ok:" not in out
