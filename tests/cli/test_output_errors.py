"""Output that cannot be written (a full disk: /dev/full; stdout closed) is one line on stderr,
``crontask: cannot write output: ...``, and exit status 74 (EX_IOERR), never a traceback; a
reader that goes away (``crontask ... | head``) ends it quietly, exit status 0, as ever. Real
subprocesses with real descriptors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli.main import OUTPUT_FAILED

GOOD = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: good}\n"
    'spec: {schedule: "@daily", command: {args: ["true"]}}\n'
)
COMMANDS = [
    ["schema"],
    ["crd"],
    ["validate", "tasks"],
    ["next", "tasks/good.yaml"],
    ["next", "tasks/good.yaml", "-n", "1000"],
    ["plan", "tasks", "--against", "tasks"],
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "good.yaml").write_text(GOOD)
    return tmp_path


def _tree() -> str:
    """This tree first on the child's path (as ``tests/e2e/conftest.py``): the crontask under
    test, not the one an installation points to."""
    root = str(Path(__file__).resolve().parents[2])
    return os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)


def run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, **how: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": _tree(), **(env or {})},
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=60,
        check=False,
        **{"stderr": subprocess.PIPE, **how},
    )


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_full_disk_is_one_line_and_exit_74(args: list[str], folder: Path) -> None:
    with open("/dev/full", "w") as full:
        done = run(args, folder, stdout=full)
    assert done.stderr == "crontask: cannot write output: No space left on device\n"
    assert done.returncode == OUTPUT_FAILED == 74


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
@pytest.mark.parametrize("args", [["--help"], ["--version"], ["validate", "--help"]], ids=" ".join)
def test_help_and_version_on_a_full_disk_are_one_line_and_exit_74(
    args: list[str], folder: Path
) -> None:
    # argparse prints these and exits while parsing: stdout is guarded before that.
    with open("/dev/full", "w") as full:
        done = run(args, folder, stdout=full)
    assert done.stderr == "crontask: cannot write output: No space left on device\n"
    assert done.returncode == OUTPUT_FAILED


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
@pytest.mark.parametrize("args", [COMMANDS[0], ["--help"]], ids=" ".join)
def test_stdout_and_stderr_on_a_full_disk_exit_74(args: list[str], folder: Path) -> None:
    # The line cannot be said: the status says it, and no traceback is tried either.
    with open("/dev/full", "w") as full:
        done = run(args, folder, stdout=full, stderr=full)
    assert done.returncode == OUTPUT_FAILED


def test_unbuffered_python_writes_stdout_through(folder: Path) -> None:
    """Under ``PYTHONUNBUFFERED=1`` (``python -u``) each write reaches stdout at once, as
    without crontask's guard: seen in the child's own stdout buffer, not in timing."""
    probe = (
        "import sys; from reconciler.cli import main; main._guard_stdout(); "
        "sys.__stderr__.write(str(sys.stdout.write_through))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": _tree(), "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "True")


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_closed_stdout_is_one_line_and_exit_74(args: list[str], folder: Path) -> None:
    # A closed descriptor 1 (the shell's >&-): Python starts with sys.stdout None.
    done = run(args, folder, stdout=subprocess.DEVNULL, pass_fds=(), preexec_fn=_close_stdout)
    assert done.stderr == "crontask: cannot write output: stdout is closed\n"
    assert done.returncode == OUTPUT_FAILED


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_reader_that_goes_away_ends_it_quietly(args: list[str], folder: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # EPIPE from the first write
    try:
        done = run(args, folder, stdout=write_end)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")


def _close_stdout() -> None:
    os.close(1)
