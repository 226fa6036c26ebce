"""Learning of a started child's exit on the event loop, and reaping it.

The exit is learnt from a pidfd (Linux 5.3+), which the loop watches like any other file
descriptor; the child is then reaped with ``waitpid``. Where pidfds do not exist, a thread per
child waits in ``waitpid()`` instead; where no thread can be started either (a pids limit),
the loop polls it with ``waitpid(pid, WNOHANG)``, never ``waitpid(-1)``.

Every pid started by ``runner.process`` is claimed (``reconciler.children``) from its spawn until
it is reaped here: where orphans come to crontask (PID 1), ``runner.reaper`` reaps them, and must
leave these alone (reaping one would lose its exit code).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import threading

from reconciler import children

# What ``Child.exited()`` returns for a process given up on (``Child.give_up``): no return code
# is this (``-N`` is death by signal N, and no signal is 1 << 16).
OUTLIVED = -(1 << 16)


class Child:
    """A started process. ``await exited()`` gives its return code (``-N``: killed by N), or
    ``OUTLIVED`` once it was given up on."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        pid: int,
        process: subprocess.Popen[bytes] | None = None,
        *,
        began: float | None = None,
    ) -> None:
        self.pid = pid
        self.began = began  # when it started (``time.monotonic()``), if the spawner noted it
        self._loop = loop
        # Popen keeps its own state of the child: it must be the one that reaps it.
        self._process = process
        self._code: int | None = None
        self._exit: asyncio.Future[int] = loop.create_future()
        self._pidfd: int | None = None
        self._polls: asyncio.TimerHandle | None = None
        # Never raises: the process runs, and its run must watch it (not record StartFailed).
        try:
            self._pidfd = os.pidfd_open(pid)
            loop.add_reader(self._pidfd, self._on_exit)
        except (AttributeError, OSError):  # not Linux, a kernel older than 5.3, or no room
            self._unwatch()
            self._wait_in_thread(report=True)

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
        if self._pidfd is not None or self._polls is not None:  # else a thread waits already
            self._unwatch()
            self._wait_in_thread(report=False)

    def give_up(self) -> None:
        """Stop waiting for an exit that may not come (SIGKILL did not end the process: an
        uninterruptible sleep): ``exited()`` returns ``OUTLIVED`` now, and a thread reaps the
        process if it ever ends."""
        if self._code is None:
            self.abandon()
            self._report(OUTLIVED)

    def _on_exit(self) -> None:
        code = self._poll()
        if code is None:
            return  # a pidfd is readable only once the process has exited; be sure anyway
        self._unwatch()
        self._report(code)

    def _poll(self) -> int | None:
        if self._process is not None:
            code = self._process.poll()
        else:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            code = None if pid == 0 else os.waitstatus_to_exitcode(status)
        if code is not None:
            children.claims.forget(self.pid)
        return code

    def _wait(self) -> int:
        if self._process is not None:
            code = self._process.wait()
        else:
            while True:
                try:
                    code = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
                    break
                except InterruptedError:  # pragma: no cover - retried by Python since PEP 475
                    continue
        children.claims.forget(self.pid)
        return code

    def _unwatch(self) -> None:
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if self._polls is not None:
            self._polls.cancel()
            self._polls = None

    def _wait_in_thread(self, *, report: bool) -> None:
        def wait() -> None:
            code = self._wait()
            if report:
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                    self._loop.call_soon_threadsafe(self._report, code)

        try:
            threading.Thread(target=wait, name=f"waitpid {self.pid}", daemon=True).start()
        except RuntimeError:  # a pids limit (this process may be what reached it): poll
            if report:
                self._poll_soon(0.01)
            else:  # the loop is going away: left to the orphan reaper, where it runs
                children.claims.forget(self.pid)

    def _poll_soon(self, delay: float) -> None:
        def poll() -> None:
            self._polls = None
            if (code := self._poll()) is None:
                self._poll_soon(min(2 * delay, 0.25))
            else:
                self._report(code)

        self._polls = self._loop.call_later(delay, poll)

    def _report(self, code: int) -> None:
        self._code = code
        if not self._exit.done():
            self._exit.set_result(code)


def has_exited(pid: int | None) -> bool:
    """Whether our child ``pid`` has exited, without waiting and without reaping it (its
    ``Child`` does): a zombie, or reaped already (its exit is on the way to the loop)."""
    if pid is None:
        return False
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True
    except (AttributeError, OSError):  # no waitid here: judge by the loop alone
        return False
