"""Starting a child process and learning of its exit on the event loop, without asyncio's
subprocess transports.

``CommandRun`` owns its output pipe and its process group, so what asyncio's
``create_subprocess_exec`` adds on top of ``subprocess.Popen`` (a transport, a protocol, a task
to connect pipes, a waiter future, a child watcher) is bookkeeping that every run pays on the
loop's thread, where the runs due in the same second are started one after the other: about
a fifth more of the loop's CPU per spawn than ``Popen`` and a pidfd (``bench/spawn_cost.py``).
asyncio's child watchers are also deprecated since Python 3.12 and gone in 3.14.

The exit is learnt from a pidfd (Linux 5.3+), which the loop watches like any other file
descriptor; ``Popen.poll()`` then reaps the child, so ``Popen`` keeps its own state right.
Where pidfds do not exist, a thread per child waits in ``waitpid()`` instead.

``subprocess.Popen`` rather than ``os.posix_spawn``: the latter is cheaper still, but it cannot
close the descriptors a library left inheritable (``close_fds``) nor change directory, and a
task must not inherit crontask's files.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import threading
from collections.abc import Mapping, Sequence


class Child:
    """A started process. ``await exited()`` gives its return code (``-N``: killed by N)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, process: subprocess.Popen[bytes]) -> None:
        self.pid = process.pid
        self._loop = loop
        self._process = process
        self._code: int | None = None
        self._exit: asyncio.Future[int] = loop.create_future()
        self._pidfd: int | None = None
        try:
            self._pidfd = os.pidfd_open(process.pid)
        except (AttributeError, OSError):  # not Linux, or a kernel older than 5.3
            self._wait_in_thread(report=True)
        else:
            loop.add_reader(self._pidfd, self._on_exit)

    async def exited(self) -> int:
        """Wait for the exit (one waiter at a time). A wait cut short by a timeout or a
        cancellation takes its future with it; the next wait gets a fresh one."""
        if self._code is None:
            if self._exit.done():
                self._exit = self._loop.create_future()
            await self._exit
        assert self._code is not None
        return self._code

    def abandon(self) -> None:
        """Stop watching (the loop is going away); a thread reaps the process when it ends."""
        if self._pidfd is not None:  # else a thread waits for it already
            self._unwatch()
            self._wait_in_thread(report=False)

    def _on_exit(self) -> None:
        code = self._process.poll()
        if code is None:
            return  # a pidfd is readable only once the process has exited; be sure anyway
        self._unwatch()
        self._report(code)

    def _unwatch(self) -> None:
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    def _wait_in_thread(self, *, report: bool) -> None:
        def wait() -> None:
            code = self._process.wait()
            if report:
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                    self._loop.call_soon_threadsafe(self._report, code)

        threading.Thread(target=wait, name=f"waitpid {self.pid}", daemon=True).start()

    def _report(self, code: int) -> None:
        self._code = code
        if not self._exit.done():
            self._exit.set_result(code)


def spawn(
    loop: asyncio.AbstractEventLoop,
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None,
    output_fd: int,
) -> Child:
    """Start ``args`` in a new session (hence its own process group), stdin from /dev/null,
    stdout and stderr to ``output_fd``. Raises what ``subprocess.Popen`` raises when the
    process cannot be started."""
    process = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=output_fd,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    return Child(loop, process)
