"""Run one command for one run attempt, on the reconciler's asyncio event loop.

Contract:

* ``CommandRun(args, env=...)`` describes one attempt and ``await run()`` performs it, once.
  Process failures (non-zero exit, death by signal, timeout, failure to start) are outcomes
  (:class:`Outcome`), never exceptions.
* No shell: ``args[0]`` is looked up on the ``PATH`` of ``env`` (exec semantics; ``os.defpath``
  when ``env`` has no ``PATH``), and ``env`` is the complete environment, passed as is.
* The process is started in a new session, hence its own process group, and the run owns that
  group: whenever the run ends (exit, timeout, ``stop()``, cancellation) whatever is left in the
  group gets SIGTERM, then SIGKILL after ``kill_grace`` seconds if anything in it is still alive.
  A process that leaves the group on purpose (``setsid``, daemons) is beyond reach, but it cannot
  keep ``run()`` waiting: output is read for at most ``_DRAIN_TIMEOUT`` more seconds.
* stdin is ``/dev/null``; stdout and stderr share one pipe, so their interleaving is preserved,
  and only the last ``output_limit`` bytes are kept, however much the command prints.
* ``timeout`` runs from the spawn to the exit of the main process. At the deadline the group is
  terminated as above and the outcome is ``TIMED_OUT`` / ``"DeadlineExceeded"``.
* ``stop(reason)`` terminates the group the same way; ``run()`` then returns ``FAILED`` with that
  reason. Cancelling ``run()`` terminates the group before ``CancelledError`` propagates.
* Exit codes follow the shell convention: death by signal N is ``128 + N``.

Everything but the fork and exec runs on the event loop (one pipe reader, one pidfd and a few
timers per run), so thousands of runs can be in flight at once without a thread each; the
process is started by the spawner's small pool of threads, on every core (see
``reconciler.runner.process``). ``stop()`` must be called from the event loop's thread. POSIX
only.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import math
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence

from reconciler.core.desired import Definition
from reconciler.core.runs import RunRecord, RunStatus
from reconciler.runner.base import Outcome, run_environment
from reconciler.runner.process import Child, spawn_soon

# After the main process has exited and its group has been cleaned up, only a process that
# escaped the group can still hold the output pipe open; we do not wait long for it.
_DRAIN_TIMEOUT = 1.0
_READ_CHUNK = 64 * 1024
# Polling for the group to empty after SIGTERM: fast at first (most commands die at once),
# then backing off so that long grace periods cost little.
_POLL_FIRST = 0.01
_POLL_MAX = 0.1
# How stale a /proc census may be before it is taken again (see _GroupCensus).
_CENSUS_MAX_AGE = 0.1

# Supervisors that outlive a run() call cancelled twice: a strong reference keeps them from being
# garbage-collected before they have finished killing their group.
_background: set[asyncio.Task[Outcome]] = set()


class _End(enum.Enum):
    """Why the run was ended from the outside; the first cause wins."""

    TIMED_OUT = enum.auto()
    STOPPED = enum.auto()
    CANCELLED = enum.auto()


class _Group(enum.Enum):
    GONE = enum.auto()
    ZOMBIES_ONLY = enum.auto()
    ALIVE = enum.auto()


class _GroupCensus:
    """Which process groups have live (non-zombie) members, as read from ``/proc``.

    ``killpg(pgid, 0)`` also succeeds when only zombies are left, and where PID 1 does not reap
    orphans (containers without an init) a killed grandchild stays a zombie for good: trusting
    ``killpg`` alone would make every such run wait out its whole grace period and then KILL
    the dead. One scan is shared by every run asking within ``_CENSUS_MAX_AGE``, so a shutdown
    terminating thousands of runs does not scan ``/proc`` thousands of times.
    """

    def __init__(self) -> None:
        self._scanned_at = -math.inf
        self._live: frozenset[int] | None = None

    def live_groups(self, *, fresh_since: float) -> frozenset[int] | None:
        """Groups with a live member, per a scan begun after ``fresh_since`` (time.monotonic).

        None when ``/proc`` cannot be read (not Linux): then nothing is known to be a zombie.
        """
        now = time.monotonic()
        if self._scanned_at < fresh_since or now - self._scanned_at > _CENSUS_MAX_AGE:
            self._live = _scan_live_groups()
            self._scanned_at = now
        return self._live


def _scan_live_groups() -> frozenset[int] | None:
    live: set[int] = set()
    try:
        entries = os.scandir("/proc")
    except OSError:
        return None
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue  # exited (and reaped) since the directory was listed
            # The command name may contain spaces and parentheses: fields are counted from the
            # last ')'. After it come: state, ppid, pgrp, ...
            fields = stat[stat.rfind(b")") + 2 :].split()
            if len(fields) >= 3 and fields[0] not in (b"Z", b"X"):
                live.add(int(fields[2]))
    return frozenset(live)


_census = _GroupCensus()


def _signal_group(pgid: int | None, sig: int) -> None:
    # killpg(0) would signal our own group and killpg(1) means kill(-1): every process we may
    # signal. Neither can be the pgid of a child started in a new session, but a bug here would
    # take the whole host down with it, so refuse them (and our own group) outright.
    if pgid is None or pgid <= 1 or pgid == os.getpgrp():
        return
    # ESRCH: the group is already gone. EPERM: only processes we may not signal are left (e.g.
    # a setuid program); there is nothing more we can do about them.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_state(pgid: int, *, fresh_since: float) -> _Group:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return _Group.GONE
    except PermissionError:
        pass  # it exists, we just may not signal all of it
    live = _census.live_groups(fresh_since=fresh_since)
    if live is None or pgid in live:
        return _Group.ALIVE
    return _Group.ZOMBIES_ONLY


def _format_seconds(seconds: float) -> str:
    return f"{seconds:g}s"


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class _TailReader:
    """Reads a pipe on the event loop, keeping only its last ``limit`` bytes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, limit: int) -> None:
        self._loop = loop
        self._fd = fd
        self._limit = limit
        self._buf = bytearray()
        self._total = 0
        self._eof = asyncio.Event()
        self._watching = False
        self._closed = False
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._on_readable)
        self._watching = True

    def _on_readable(self) -> None:
        try:
            chunk = os.read(self._fd, _READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""  # treat a broken pipe like its end
        if not chunk:
            self._unwatch()
            self._eof.set()
            return
        self._total += len(chunk)
        self._buf += chunk
        # Trimming after every chunk keeps memory at limit + one chunk however much is printed.
        excess = len(self._buf) - self._limit
        if excess > 0:
            del self._buf[:excess]

    async def drain(self, timeout: float) -> None:
        """Wait for end of file, but at most ``timeout`` seconds."""
        if self._eof.is_set():
            return  # the usual case: the pipe closed with the process
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._eof.wait()

    def _unwatch(self) -> None:
        if self._watching:
            self._loop.remove_reader(self._fd)
            self._watching = False

    def close(self) -> None:
        if not self._closed:
            self._unwatch()
            os.close(self._fd)
            self._closed = True

    def text(self) -> str:
        data = bytes(self._buf)
        dropped = self._total - len(data)
        if not dropped:
            return data.decode("utf-8", errors="replace")
        # The cut may have split a UTF-8 sequence: drop its orphaned continuation bytes (at most
        # three) rather than start the tail with a replacement character.
        skip = 0
        while skip < min(3, len(data)) and 0x80 <= data[skip] <= 0xBF:
            skip += 1
        tail = data[skip:].decode("utf-8", errors="replace")
        return f"[... {dropped + skip} bytes truncated ...]\n{tail}"


class CommandRun:
    """One attempt at running one command. See the module docstring for the contract."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str],
        working_dir: str | None = None,
        timeout: float | None = None,
        kill_grace: float = 10.0,
        output_limit: int = 64 * 1024,
    ) -> None:
        if isinstance(args, str) or not args:
            raise ValueError("args must be a non-empty sequence of strings")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be positive or None, got {timeout!r}")
        if not kill_grace >= 0:
            raise ValueError(f"kill_grace must be >= 0, got {kill_grace!r}")
        if output_limit < 0:
            raise ValueError(f"output_limit must be >= 0, got {output_limit!r}")
        self._args = tuple(args)
        self._env = dict(env)
        self._working_dir = working_dir
        self._timeout = timeout
        self._kill_grace = kill_grace
        self._output_limit = output_limit

        self.started = asyncio.Event()  # set once spawned, or once spawning failed/was refused
        self._loop: asyncio.AbstractEventLoop | None = None
        self._run_called = False
        self._pid: int | None = None
        self._spawned = False
        self._exited = False  # the main process is gone: stop() no longer changes anything
        self._end: _End | None = None
        self._stop_reason: str | None = None
        self._terminator: asyncio.Task[None] | None = None
        self._escalated = False  # SIGKILL was needed after the grace period

    @property
    def pid(self) -> int | None:
        return self._pid

    def stop(self, reason: str) -> None:
        """Ask the command to stop: SIGTERM the group now, SIGKILL it after ``kill_grace``.

        ``run()`` then returns ``FAILED`` with ``reason``. Called before ``run()`` (or while it is
        still spawning), the process is never started (or is terminated as soon as it exists).
        No-op once the process has exited, or if the run is already ending (first cause wins).
        """
        if self._exited or self._end is not None:
            return
        self._end = _End.STOPPED
        self._stop_reason = reason
        self._begin_termination()

    async def run(self) -> Outcome:
        """Start the process and wait for it; see the module docstring."""
        if self._run_called:
            raise RuntimeError("CommandRun.run() may only be called once")
        self._run_called = True
        self._loop = asyncio.get_running_loop()
        if self._end is _End.STOPPED:
            self._exited = True
            self.started.set()
            return Outcome(
                status=RunStatus.FAILED,
                exit_code=None,
                reason=self._stop_reason,
                message=f"stopped before it started: {self._stop_reason}",
                output="",
                pid=None,
            )
        # The work happens in a task of its own, shielded from cancellation of run(): cancelling
        # must not abandon a live process group, it must terminate it first.
        supervisor = self._loop.create_task(self._supervise())
        try:
            return await asyncio.shield(supervisor)
        except asyncio.CancelledError:
            if self._end is None:
                self._end = _End.CANCELLED
            self._begin_termination()  # if still spawning, _supervise does it once spawned
            # Wait for the group to be gone before letting the cancellation through. A second
            # cancellation stops the waiting; the supervisor then finishes in the background.
            _background.add(supervisor)
            supervisor.add_done_callback(_background.discard)
            await asyncio.wait([supervisor])
            raise

    def _begin_termination(self) -> None:
        if not self._spawned or self._exited or self._terminator is not None:
            return
        assert self._loop is not None  # spawned implies run() is in progress
        self._terminator = self._loop.create_task(self._terminate_group())

    async def _terminate_group(self) -> None:
        """SIGTERM the group; SIGKILL it after ``kill_grace`` if anything in it is still alive."""
        assert self._pid is not None
        loop = asyncio.get_running_loop()
        term_sent_at = time.monotonic()
        _signal_group(self._pid, signal.SIGTERM)
        deadline = loop.time() + self._kill_grace
        delay = _POLL_FIRST
        while True:
            # Sleeping before the first look gives the group a moment to act on the signal, and
            # lets runs terminated together (timeouts in one tick, shutdown) share one census.
            await asyncio.sleep(min(delay, max(deadline - loop.time(), 0)))
            delay = min(delay * 2, _POLL_MAX)
            state = _group_state(self._pid, fresh_since=term_sent_at)
            if state is _Group.GONE:
                return
            if state is _Group.ZOMBIES_ONLY:
                # Nothing left to wait for. The KILL is harmless to zombies (which keep the
                # pgid from being reused) and catches a member forked while /proc was scanned.
                _signal_group(self._pid, signal.SIGKILL)
                return
            if loop.time() >= deadline:
                break
        self._escalated = True
        _signal_group(self._pid, signal.SIGKILL)

    async def _supervise(self) -> Outcome:
        assert self._loop is not None
        # Our own pipe: we must be able to stop reading and close it while a stray process
        # still holds the write end (a stream transport would stay open until EOF).
        read_fd, write_fd = os.pipe()
        try:
            # The spawner closes the write end once the child has its copy (EOF needs that).
            child = await spawn_soon(
                self._args, env=self._env, cwd=self._working_dir, output_fd=write_fd
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            os.close(read_fd)
            self._exited = True
            self.started.set()
            return self._start_failed(exc)
        except BaseException:
            os.close(read_fd)
            self.started.set()
            raise

        self._pid = child.pid
        self._spawned = True
        self.started.set()
        reader = _TailReader(self._loop, read_fd, self._output_limit)
        try:
            if self._end is not None:
                self._begin_termination()  # stop() or cancellation arrived while spawning
            returncode = await self._wait_main(child)
            self._exited = True
            leftovers = False
            if self._terminator is None:
                # The run owns its group: what the main process left behind goes with it.
                state = _group_state(self._pid, fresh_since=time.monotonic())
                if state is _Group.ALIVE:
                    leftovers = True
                    self._terminator = self._loop.create_task(self._terminate_group())
            if self._terminator is not None:
                await self._terminator
            await reader.drain(_DRAIN_TIMEOUT)
        except asyncio.CancelledError:
            # run() shields this task, so this is the event loop going away: no time for grace.
            _signal_group(self._pid, signal.SIGKILL)
            child.abandon()
            raise
        finally:
            reader.close()
        return self._outcome(returncode, leftovers=leftovers, output=reader.text())

    async def _wait_main(self, child: Child) -> int:
        if self._timeout is None:
            return await child.exited()
        assert self._loop is not None
        deadline = self._loop.time() + self._timeout
        try:
            async with asyncio.timeout_at(deadline):
                return await child.exited()
        except TimeoutError:
            if self._end is None:
                self._end = _End.TIMED_OUT
            self._begin_termination()
            return await child.exited()

    def _outcome(self, returncode: int, *, leftovers: bool, output: str) -> Outcome:
        exit_code = returncode if returncode >= 0 else 128 - returncode
        status = RunStatus.FAILED
        reason: str | None
        if self._end is _End.TIMED_OUT:
            assert self._timeout is not None
            status = RunStatus.TIMED_OUT
            reason = "DeadlineExceeded"
            message = f"timed out after {_format_seconds(self._timeout)}; process group terminated"
        elif self._end is _End.STOPPED:
            reason = self._stop_reason
            message = f"stopped: {self._stop_reason}"
        elif self._end is _End.CANCELLED:
            reason = "Cancelled"
            message = "cancelled; process group terminated"
        elif returncode == 0:
            status = RunStatus.SUCCEEDED
            reason = None
            message = "exited with status 0"
        elif returncode > 0:
            reason = "NonZeroExit"
            message = f"exited with status {returncode}"
        else:
            reason = "Signaled"
            message = f"killed by signal {_signal_name(-returncode)}"
        if leftovers:
            message += "; processes it left in its group were terminated"
        if self._escalated:
            message += f" (SIGKILL after {_format_seconds(self._kill_grace)} grace period)"
        return Outcome(
            status=status,
            exit_code=exit_code,
            reason=reason,
            message=message,
            output=output,
            pid=self._pid,
        )

    def _start_failed(self, exc: BaseException) -> Outcome:
        command = self._args[0]
        if isinstance(exc, OSError):
            detail = exc.strerror or str(exc)
            # subprocess names the working directory as the failing file when chdir() failed.
            if self._working_dir is not None and exc.filename in (
                self._working_dir,
                os.fsencode(self._working_dir),
            ):
                message = f"cannot use working directory {self._working_dir}: {detail}"
            elif exc.errno == errno.ENOENT:
                message = f"command not found: {command}"
            elif exc.errno == errno.EACCES:
                message = f"permission denied: {command}"
            else:
                message = f"cannot start {command}: {detail}"
        else:
            message = f"cannot start {command!r}: {exc}"
        return Outcome(
            status=RunStatus.FAILED,
            exit_code=None,
            reason="StartFailed",
            message=message,
            output="",
            pid=None,
        )


class CommandRunner:
    """The ``command`` action: each attempt is a :class:`CommandRun` of ``spec.command``.

    ``task_env`` is what every command's environment starts from (see
    ``reconciler.runner.environment``); then the task's own ``env``; then the run's
    ``CRONTASK_*`` variables, which nothing overrides.
    """

    field = "command"

    def __init__(
        self,
        task_env: Mapping[str, str],
        *,
        kill_grace: float = 10.0,
        output_limit: int = 64 * 1024,
    ) -> None:
        self.task_env = dict(task_env)
        self.kill_grace = kill_grace
        self.output_limit = output_limit

    def attempt(self, definition: Definition, record: RunRecord) -> CommandRun:
        spec = definition.task.spec
        assert spec.command is not None  # the registry asks only tasks that set it
        return CommandRun(
            spec.command.args,
            env={**self.task_env, **spec.command.env, **run_environment(record)},
            working_dir=spec.command.working_dir,
            timeout=spec.timeout_seconds,
            kill_grace=self.kill_grace,
            output_limit=self.output_limit,
        )
