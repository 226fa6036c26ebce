"""spawn() and Child against real processes: exit codes, reaping, the fallback without pidfds,
and what a child does (and does not) get from crontask."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from pathlib import Path

import pytest

from reconciler.runner.process import Child, spawn

ENV = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C.UTF-8"}


@pytest.fixture(params=["pidfd", "thread"])
def exit_watch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with pidfds and with the waitpid thread used where they do not exist."""
    if request.param == "thread":
        monkeypatch.delattr(os, "pidfd_open")
    elif not hasattr(os, "pidfd_open"):
        pytest.skip("no pidfds on this platform")
    return str(request.param)


async def _spawn(args: list[str], cwd: str | None = None) -> tuple[Child, int]:
    """Spawned child and the read end of its output pipe."""
    read_fd, write_fd = os.pipe()
    try:
        child = spawn(asyncio.get_running_loop(), args, env=ENV, cwd=cwd, output_fd=write_fd)
    finally:
        os.close(write_fd)
    return child, read_fd


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # no such child any more: it was reaped
    return False


@pytest.mark.parametrize(
    ("script", "code"),
    [("exit 0", 0), ("exit 3", 3), ("kill -TERM $$", -signal.SIGTERM)],
)
def test_exit_code_is_reported_and_the_child_reaped(
    exit_watch: str, script: str, code: int
) -> None:
    async def scenario() -> tuple[int, int]:
        child, read_fd = await _spawn(["sh", "-c", script])
        os.close(read_fd)
        return child.pid, await child.exited()

    pid, got = asyncio.run(scenario())
    assert got == code
    assert _reaped(pid)


def test_output_stdin_session_and_working_directory(exit_watch: str, tmp_path: Path) -> None:
    probe = (
        "import os, sys; data = sys.stdin.read(); "
        "print(repr(data), os.getsid(0) == os.getpid(), os.getcwd(), flush=True); "
        "print('to stderr', file=sys.stderr)"
    )

    async def scenario() -> tuple[int, bytes]:
        child, read_fd = await _spawn([sys.executable, "-c", probe], cwd=str(tmp_path))
        code = await child.exited()
        return code, _read_all(read_fd)

    code, output = asyncio.run(scenario())
    assert code == 0
    # stdin is /dev/null, the child leads a session of its own, stderr shares the pipe.
    assert output.decode() == f"'' True {tmp_path}\nto stderr\n"


def test_the_child_inherits_no_descriptor_of_crontask(exit_watch: str) -> None:
    leaked_r, leaked_w = os.pipe()
    os.set_inheritable(leaked_r, True)  # as a careless library might leave one
    lister = "import os; print(sorted(int(fd) for fd in os.listdir('/proc/self/fd')))"

    async def scenario() -> bytes:
        child, read_fd = await _spawn([sys.executable, "-c", lister])
        await child.exited()
        return _read_all(read_fd)

    try:
        output = asyncio.run(scenario())
    finally:
        os.close(leaked_r)
        os.close(leaked_w)
    fds = [int(fd) for fd in output.decode().strip("[]\n").split(",")]
    # stdin, stdout, stderr, and the one listdir itself had open (the lowest free number).
    assert leaked_r > 3
    assert fds == [0, 1, 2, 3]


def test_a_timed_out_wait_does_not_stop_a_later_one(exit_watch: str) -> None:
    async def scenario() -> int:
        child, read_fd = await _spawn(["sleep", "30"])
        os.close(read_fd)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(child.exited(), 0.05)
        os.kill(child.pid, signal.SIGKILL)
        return await child.exited()

    assert asyncio.run(scenario()) == -signal.SIGKILL


def test_an_abandoned_child_is_still_reaped(exit_watch: str) -> None:
    async def scenario() -> int:
        child, read_fd = await _spawn(["sleep", "30"])
        os.close(read_fd)
        child.abandon()  # the loop is going away before the child ends
        return child.pid

    pid = asyncio.run(scenario())
    os.kill(pid, signal.SIGKILL)
    (reaper,) = [t for t in threading.enumerate() if t.name == f"waitpid {pid}"]
    reaper.join(timeout=10)
    assert not reaper.is_alive()
    assert _reaped(pid)
