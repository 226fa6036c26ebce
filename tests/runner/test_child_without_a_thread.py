"""A process that started is watched to its end even when nothing can start a thread to wait
for it: without pidfds (a kernel older than 5.3, such as RHEL 8's) each child's exit is waited
for in a thread, and under a pids limit the command's own process may be the one that reached
it. The run was recorded StartFailed (retried: a second copy) while its process ran on past
its timeout, never stopped nor reaped. So did one whose output pipe the loop could not
watch."""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import os
import signal
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler import children
from reconciler.core.runs import RunStatus
from reconciler.runner import process
from reconciler.runner.command import CommandRun
from reconciler.runner.output import TailReader
from tests.helpers import wait_for
from tests.http_held import BOUND, StoppableLoop, run_stoppable

ENV = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C.UTF-8"}


@pytest.fixture
def no_wait_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """No pidfds, and a pids limit for every thread that would wait for a child."""
    monkeypatch.delattr(os, "pidfd_open", raising=False)
    real = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        if thread.name.startswith("waitpid"):
            raise RuntimeError("can't start new thread")
        real(thread)

    monkeypatch.setattr(threading.Thread, "start", start)


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


@pytest.mark.usefixtures("no_wait_thread")
def test_a_command_whose_exit_no_thread_can_wait_for_runs_and_exits() -> None:
    outcome = asyncio.run(CommandRun(["sh", "-c", "echo ran; exit 3"], env=ENV).run())
    assert (outcome.status, outcome.reason, outcome.exit_code) == (
        RunStatus.FAILED,
        "NonZeroExit",
        3,
    )
    assert outcome.output == "ran\n"


@pytest.mark.usefixtures("no_wait_thread")
def test_a_command_whose_exit_no_thread_can_wait_for_is_stopped_at_its_timeout(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "pid"
    args = ["sh", "-c", f'echo $$ > "{pid_file}"; exec sleep 30']
    began = time.monotonic()
    outcome = asyncio.run(CommandRun(args, env=ENV, timeout=0.5, kill_grace=0.2).run())
    assert time.monotonic() - began < 10
    assert outcome.reason != "StartFailed", outcome.message
    assert outcome.status is RunStatus.TIMED_OUT
    pid = int(pid_file.read_text())
    wait_for("its process stopped and reaped", lambda: _state(pid) is None, timeout=5)


@pytest.fixture
def no_pipe_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop cannot watch an output pipe (epoll's max_user_watches reached: ENOSPC)."""
    real = asyncio.selector_events.BaseSelectorEventLoop.add_reader

    def add_reader(loop: Any, fd: Any, callback: Any, *args: Any) -> None:
        if isinstance(fd, int) and stat.S_ISFIFO(os.fstat(fd).st_mode):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(loop, fd, callback, *args)

    monkeypatch.setattr(asyncio.selector_events.BaseSelectorEventLoop, "add_reader", add_reader)


@pytest.mark.usefixtures("no_pipe_watch")
def test_a_command_whose_output_the_loop_cannot_watch_is_read_and_stopped_at_its_timeout(
    tmp_path: Path,
) -> None:
    """It ran on unwatched past its timeout: the error left the run before its wait began."""
    pid_file = tmp_path / "pid"
    args = ["sh", "-c", f'echo $$ > "{pid_file}"; echo ran; exec sleep 30']
    outcome = asyncio.run(CommandRun(args, env=ENV, timeout=0.5, kill_grace=0.2).run())
    assert (outcome.status, outcome.output) == (RunStatus.TIMED_OUT, "ran\n")
    pid = int(pid_file.read_text())
    wait_for("its process stopped and reaped", lambda: _state(pid) is None, timeout=5)


@pytest.mark.usefixtures("no_pipe_watch")
def test_the_output_the_loop_cannot_watch_is_read_whole_however_much_is_printed() -> None:
    """More than a pipe holds: a pipe nobody reads would hold the command at its first write."""
    args = ["sh", "-c", "head -c 200000 /dev/zero | tr '\\0' x; echo; echo end"]
    outcome = asyncio.run(CommandRun(args, env=ENV, timeout=10, output_limit=1000).run())
    assert outcome.status is RunStatus.SUCCEEDED, outcome.message
    assert outcome.output.endswith("x\nend\n")


def test_output_read_in_turns_leaves_the_loop_to_others_however_fast_it_comes() -> None:
    """A command that prints as fast as it is read (``yes`` on a few cores) held the loop in
    one turn of reads for as long as it printed: no timer ran meanwhile, its timeout's
    neither. ``/dev/zero`` is output that never runs dry, and a file no loop can watch."""

    async def main() -> tuple[float, bool]:
        loop = asyncio.get_running_loop()
        fd = os.open("/dev/zero", os.O_RDONLY)
        dry = os.open("/dev/null", os.O_RDONLY)
        # For a loop held in one turn: its output runs dry (end of file) after 3 s.
        ender = threading.Timer(3, os.dup2, [dry, fd])
        ender.start()
        began = time.monotonic()
        reader = TailReader(loop, fd, 1000)
        try:
            await asyncio.sleep(0.05)
            late = time.monotonic() - began
            return late, reader.text().endswith("\ufffd" * 10)
        finally:
            ender.cancel()
            ender.join()
            reader.close()
            os.close(dry)

    late, read = asyncio.run(main())
    assert read
    assert late < 1.5


@pytest.mark.usefixtures("no_pipe_watch")
def test_the_output_read_in_turns_is_read_at_once_when_its_process_has_ended() -> None:
    """Its next turn could be a quarter of a second away (a quiet command's): every run of
    such a command ended that much later than its process."""

    async def main() -> tuple[float, str]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, StoppableLoop)
        read_fd, write_fd = os.pipe()
        reader = TailReader(loop, read_fd, 1000)
        try:
            for _ in range(10):  # quiet for a while (the loop's clock moved on): turns slow down
                loop.stopped_for += 1
                await asyncio.sleep(0)
            os.write(write_fd, b"done\n")
            os.close(write_fd)  # the process has ended
            began = time.monotonic()
            await reader.drain(BOUND)
            return time.monotonic() - began, reader.text()
        finally:
            reader.close()

    took, read = run_stoppable(main())
    assert (took < 0.1, read) == (True, "done\n")


def _orphan(loop: asyncio.AbstractEventLoop) -> tuple[int, concurrent.futures.Future[Any]]:
    """A start that returned after its run stopped waiting for it: ``_kill_orphan``'s."""
    read_fd, write_fd = os.pipe()
    number = children.claims.begin()  # claimed as the spawner claims it
    try:
        actions = [(os.POSIX_SPAWN_DUP2, write_fd, 1)]
        pid = os.posix_spawnp("sleep", ["sleep", "30"], ENV, setsid=True, file_actions=actions)
    except BaseException:
        children.claims.end(number, None)
        raise
    finally:
        os.close(write_fd)
    children.claims.end(number, pid)
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    future.set_result(((pid, None), read_fd, time.monotonic()))
    return pid, future


def _reaped_by_the_orphan_reaper(pid: int) -> bool:
    """Whether ``runner.reaper`` could reap ``pid`` (nothing claims it), which it then does."""
    mark = children.claims.mark()
    return children.claims.reap_unclaimed([pid], mark, lambda p: os.waitpid(p, 0)[0] == p) == 1


@pytest.mark.usefixtures("no_wait_thread")
def test_a_start_nobody_waited_for_is_reaped_from_the_loop_when_no_thread_can() -> None:
    """Its reap thread's RuntimeError left a zombie whose claim was held: not even the orphan
    reaper (crontask as PID 1) would take it, and it held its place under the pids limit."""

    async def main() -> int:
        pid, future = _orphan(asyncio.get_running_loop())
        process._kill_orphan(asyncio.get_running_loop(), "sleep", future)
        for _ in range(500):  # the loop polls it: let it run
            if _state(pid) is None:
                break
            await asyncio.sleep(0.01)
        return pid

    assert _state(asyncio.run(main())) is None


@pytest.mark.usefixtures("no_wait_thread")
def test_a_start_nobody_waited_for_past_its_loop_is_left_to_the_orphan_reaper() -> None:
    loop = asyncio.new_event_loop()
    pid, future = _orphan(loop)
    loop.close()
    process._kill_orphan(loop, "sleep", future)
    wait_for("killed", lambda: _state(pid) == "Z")
    assert _reaped_by_the_orphan_reaper(pid)


@pytest.mark.usefixtures("no_wait_thread")
def test_a_polled_child_abandoned_with_its_loop_is_left_to_the_orphan_reaper() -> None:
    """Abandoned (the loop going away, its session killed), a child no thread can wait for
    kept its claim: a zombie not even the orphan reaper would take."""

    async def main() -> int:
        pid, future = _orphan(asyncio.get_running_loop())
        started, read_fd, _ = future.result()
        os.close(read_fd)
        process.Child(asyncio.get_running_loop(), *started).abandon()
        os.kill(pid, signal.SIGKILL)
        return pid

    pid = asyncio.run(main())
    wait_for("killed", lambda: _state(pid) == "Z")
    assert _reaped_by_the_orphan_reaper(pid)
