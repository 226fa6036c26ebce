"""Starting a child process and learning of its exit on the event loop, without asyncio's
subprocess transports, and on every core the machine has.

``CommandRun`` owns its output pipe and its process group, so what asyncio's
``create_subprocess_exec`` adds on top of a spawn (a transport, a protocol, a task to connect
pipes, a waiter future, a child watcher) is bookkeeping it does not need; asyncio's child
watchers are also deprecated since Python 3.12 and gone in 3.14.

**Where the fork and exec happen.** ``spawn_soon`` starts the process in a small pool of
threads (``Spawner``), so the runs due in the same second are not started one after the other
on the loop's thread. Neither ``subprocess.Popen`` nor ``os.posix_spawn`` lets go of the GIL
while the kernel clones the process and the child reaches its ``exec`` (most of a spawn's
time: the parent thread is suspended until then), so in threads they would still start one
process at a time. Where the C library offers what crontask's contract needs, the pool calls
its ``posix_spawn`` (``runner.libc_spawn``), which lets go of the GIL, so two threads start two
processes on two cores at once; elsewhere it uses ``subprocess.Popen``. Either way the child
gets a new session, stdin from ``/dev/null``, stdout and stderr on the given descriptor, no
other descriptor, and ``args[0]`` looked up on the ``PATH`` of ``env``; through the C library,
every signal at its default, through ``Popen`` the two it restores (SIGPIPE, SIGXFSZ): resetting
the others takes a ``preexec_fn``, which is not safe in a process with threads.

**A start that does not return.** A program or working directory on a file system that does
not answer (a hung NFS or FUSE mount) holds its start in the kernel, and the thread with it,
for as long as the mount is hung. Such a thread no longer counts as one of its pool's: once its
start has been under way for ``pool.STUCK_AFTER`` seconds, or its run has given up on it
(``spawn_soon`` cancelled: a timeout, a stop), another thread takes its place, for
``pool.STUCK_MAX`` stuck starts at most; past that bound each further one holds a thread of its
pool, and a pool whose every thread is stuck refuses new starts (they fail at once, saying
why) rather than queue them behind it. Given up, a start still before its ``exec`` is killed
(it never runs its program); one whose process appears later all the same has that process's
session killed at once. The threads are daemons: none keeps crontask from exiting.

Its exit is learnt as ``runner.child`` says. Every pid started here is claimed
(``reconciler.children``) from its spawn until it is reaped there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import functools
import logging
import os
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import ParamSpec, TypeVar

from reconciler import children
from reconciler.host import usable_cores
from reconciler.runner import group, libc_spawn
from reconciler.runner.child import Child as Child
from reconciler.runner.child import has_exited as has_exited
from reconciler.runner.pool import STUCK_AFTER, Pool

log = logging.getLogger("crontask.runner")

P = ParamSpec("P")
T = TypeVar("T")


# -- starting a process ---------------------------------------------------------------------


class Withdrawn(Exception):
    """The process was not started: its run was stopped while the start waited for its
    instant."""


Started = tuple[int, "subprocess.Popen[bytes] | None"]
Piped = tuple[Started, int]  # and the read end of the pipe its output goes to
Submitted = tuple[Started, int, float]  # and the instant it started (``time.monotonic()``)


def _popen(args: Sequence[str], env: Mapping[str, str], cwd: str | None, output_fd: int) -> Started:
    try:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=output_fd,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError as error:
        # Not the working directory (Popen names it then): the program, or what runs it.
        if error.filename != args[0]:
            raise
        raise libc_spawn.interpreter_not_found(args[0], env, cwd) or error from None
    except OSError as error:
        if error.errno == errno.EACCES and error.filename == args[0]:
            raise libc_spawn.permission_denied(args[0], env, cwd) or error from None
        if error.errno != errno.ENOEXEC:
            raise
        raise libc_spawn.not_executable(args[0], env, cwd) or error from None
    return process.pid, process


class Spawner:
    """Starts processes from a pool of threads: four per core this process may run on, at most
    16. A thread mostly waits (while the kernel clones and the child execs, then for the GIL),
    and a burst of 1 000 same-second commands on two cores started sooner with four per core
    than with two (``bench/lateness.py --worker command 1000``: spawned p50 -10 to -20 %)."""

    def __init__(
        self,
        threads: int | None = None,
        *,
        use_libc: bool = True,
        stuck_after: float = STUCK_AFTER,
    ) -> None:
        self._libc = libc_spawn.load() if use_libc else None
        self.threads = threads or min(16, 4 * usable_cores())
        self.stuck_after = stuck_after
        self._pool: Pool | None = None
        # Starts that wait for their instant wait in threads of their own: parked in the pool
        # above, a burst due at the next slot would hold every thread for up to a second, and
        # a run due now (a manual run, a retry) would wait behind it.
        self._waiting_pool: Pool | None = None
        self._lock = threading.Lock()

    @property
    def parallel(self) -> bool:
        """True if two threads start two processes at once (the GIL is released)."""
        return self._libc is not None

    def start(
        self, args: Sequence[str], env: Mapping[str, str], cwd: str | None, output_fd: int
    ) -> Started:
        """Start the process in the calling thread: its pid, and the ``Popen`` that must reap
        it if one was used. Raises ``OSError`` or ``ValueError`` (as ``subprocess.Popen``
        would) when it cannot be started. The pid stays claimed until ``Child`` reaps it."""
        number = children.claims.begin()
        started: Started | None = None
        try:
            if self._libc is not None and output_fd > 2:
                started = self._libc.spawn(args, env, cwd, output_fd), None
            else:
                started = _popen(args, env, cwd, output_fd)
            return started
        finally:
            children.claims.end(number, started[0] if started else None)

    def submit(
        self,
        args: Sequence[str],
        env: Mapping[str, str],
        cwd: str | None,
        *,
        start_at: float | None = None,
        wanted: Callable[[], bool] | None = None,
    ) -> concurrent.futures.Future[Submitted]:
        """Start the process in the pool (see ``start``), its stdout and stderr on a new pipe:
        the process, the pipe's read end and the instant it started. The pipe is made there,
        just before the spawn, so a run waiting for its turn holds no descriptor. The clone
        copies every descriptor this process has open into the child, which closes them
        again; 2 000 of them (a burst's pipes made ahead on the loop) cost a quarter of the
        pool's starts per second (``bench/floor_bench.py --worker threads 4000 --open 2000``).

        ``start_at`` (``time.monotonic()``'s clock): the thread waits until then. It starts
        the process only if ``wanted()`` still says so (else ``Withdrawn``), asked just before.
        A run claimed ahead of its slot starts on the slot this way, a sleep's precision after
        it, whatever the event loop is busy with then.

        Raises ``RuntimeError`` when no thread can take it (a pids limit, or every thread
        stuck: see the module docstring); it is not started then."""

        def start() -> Submitted:
            if start_at is not None and (wait := start_at - time.monotonic()) > 0:
                time.sleep(wait)
            if wanted is not None and not wanted():
                raise Withdrawn
            Pool.under_way(args[0])
            started, read_fd = self._start_piped(args, env, cwd)
            return started, read_fd, time.monotonic()

        return self._executor(waiting=start_at is not None).submit(start)

    def give_up(self, future: concurrent.futures.Future[Submitted]) -> None:
        """Nobody waits for the start ``future`` any more (see ``Pool.give_up``)."""
        for pool in (self._pool, self._waiting_pool):
            if pool is not None:
                pool.give_up(future)

    def _start_piped(self, args: Sequence[str], env: Mapping[str, str], cwd: str | None) -> Piped:
        # Through the C library where it is used: os.pipe() and os.close() let go of the GIL,
        # and each time the thread may wait a switch interval (5 ms) to get it back from a
        # busy thread (the loop, a scrape), for a call of a microsecond.
        libc = self._libc
        pipe, close = (libc.pipe, libc.close) if libc is not None else (os.pipe, os.close)
        read_fd, write_fd = pipe()
        try:
            return self.start(args, env, cwd, write_fd), read_fd
        except BaseException:
            close(read_fd)
            raise
        finally:
            close(write_fd)  # the child has its copy: EOF comes when the last holder ends

    def _executor(self, *, waiting: bool = False) -> Pool:
        with self._lock:
            if waiting:
                if self._waiting_pool is None:
                    self._waiting_pool = Pool(self.threads, "crontask-spawn-at", self.stuck_after)
                return self._waiting_pool
            if self._pool is None:
                self._pool = Pool(self.threads, "crontask-spawn", self.stuck_after)
            return self._pool


_spawner: Spawner | None = None


def spawner() -> Spawner:
    """The process-wide spawner (one pool for every run)."""
    global _spawner
    if _spawner is None:
        _spawner = Spawner()
    return _spawner


def spawn(
    loop: asyncio.AbstractEventLoop,
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None,
    output_fd: int,
) -> Child:
    """Start ``args`` in the calling thread: a new session (hence its own process group),
    stdin from /dev/null, stdout and stderr to ``output_fd``. Raises what
    ``subprocess.Popen`` raises when the process cannot be started."""
    return Child(loop, *spawner().start(args, env, cwd, output_fd))


async def spawn_soon(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None,
    start_at: float | None = None,
    wanted: Callable[[], bool] | None = None,
) -> tuple[Child, int]:
    """``spawn`` in the spawner's threads, with stdout and stderr on a new pipe: the child and
    the pipe's read end, which the caller closes. The loop goes on while the process starts.
    A wait cancelled while its start still waits for a thread takes the start back; one
    cancelled later (the start under way, or waiting for its instant) gives the start up
    (``Spawner.give_up``: a start stuck before its exec is killed there), and kills the
    process's session once its pid is known, and reaps it. ``start_at`` and ``wanted``: see
    ``Spawner.submit``."""
    loop = asyncio.get_running_loop()
    starter = spawner()
    future = starter.submit(args, env, cwd, start_at=start_at, wanted=wanted)
    try:
        started, read_fd, began = await _handoff(loop).wait(future)
    except asyncio.CancelledError:
        if not future.cancel():  # succeeds only if no thread has taken the start yet
            starter.give_up(future)  # it may be stuck: its thread is not waited for
        future.add_done_callback(functools.partial(_kill_orphan, loop, args[0]))
        raise
    finally:
        # A start that failed: its error's traceback holds this frame, and the future the error.
        del future
    return Child(loop, *started, began=began), read_fd


class _Handoff:
    """Hands the spawner threads' results to one loop. ``asyncio.wrap_future`` wakes the loop
    once per result, by a write to its self-pipe from the spawner's thread, and that write lets
    go of the GIL, which the thread must then wait for again before its next start. Here the
    results that arrive before the loop runs share one wake-up (``bench/ANALYSIS.md``,
    "Sustained starts": faster starts in a burst of 1 000 commands, and sooner ones in a burst
    of 100)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weakly: _handoffs is keyed by the loop. (A result waiting to be settled holds it
        # through its waiter until the loop settles it, or until it is found closed.)
        self._loop = weakref.ref(loop)
        self._lock = threading.Lock()
        # Settled on the loop, in the order they arrived.
        self._pending: list[
            tuple[asyncio.Future[Submitted], concurrent.futures.Future[Submitted]]
        ] = []

    async def wait(self, future: concurrent.futures.Future[Submitted]) -> Submitted:
        """The spawner's result, as ``await asyncio.wrap_future(future)`` gives it, except
        that a cancelled wait leaves ``future`` to the caller."""
        waiter: asyncio.Future[Submitted] = asyncio.get_running_loop().create_future()
        # No closure over ``future``: the future keeps its callbacks, and would keep itself.
        future.add_done_callback(functools.partial(self._arrived, waiter))
        try:
            return await waiter
        finally:
            del future, waiter  # as in spawn_soon: an error's traceback holds this frame

    def _arrived(
        self, waiter: asyncio.Future[Submitted], future: concurrent.futures.Future[Submitted]
    ) -> None:
        """In the thread that ended the future: the spawner's, or the loop's (a start found
        done already, or cancelled while queued)."""
        with self._lock:
            self._pending.append((waiter, future))
            if len(self._pending) > 1:
                return  # the first of them wakes the loop, which settles them all
        loop = self._loop()
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                loop.call_soon_threadsafe(self._settle)
                return
        with self._lock:
            self._pending.clear()  # the loop is closed: nobody waits, and nothing may hold it

    def _settle(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for waiter, future in pending:
            if waiter.cancelled():
                continue
            if future.cancelled():
                waiter.cancel()
                continue
            error = future.exception()
            if error is None:
                waiter.set_result(future.result())
            else:
                if isinstance(error, StopIteration):  # an asyncio future refuses one
                    error = RuntimeError(f"the start raised {error!r}")
                waiter.set_exception(error)


# One per loop: tests run several loops, one after another.
_handoffs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Handoff] = (
    weakref.WeakKeyDictionary()
)


def _handoff(loop: asyncio.AbstractEventLoop) -> _Handoff:
    handoff = _handoffs.get(loop)
    if handoff is None:
        handoff = _handoffs[loop] = _Handoff(loop)
    return handoff


def _kill_orphan(
    loop: asyncio.AbstractEventLoop, command: str, future: concurrent.futures.Future[Submitted]
) -> None:
    """A process nobody waits for (its run's wait for its start was cancelled: a timeout, a
    stop, the loop's end): kill its session at once, then reap it."""
    if future.cancelled() or future.exception() is not None:
        return
    (pid, process), read_fd, _ = future.result()
    os.close(read_fd)
    # Its session, not just its group: it may have run a moment already (a stuck start that
    # came back).
    group.signal_session(pid, signal.SIGKILL, fresh_since=time.monotonic())
    log.warning(
        "a start nobody waited for any more returned: its process was killed at once",
        extra={"fields": {"pid": pid, "command": command}},
    )

    def reap() -> None:
        if process is None:
            os.waitpid(pid, 0)
        else:
            process.wait()
        children.claims.forget(pid)

    try:
        threading.Thread(target=reap, name=f"waitpid {pid}", daemon=True).start()
    except RuntimeError:  # a pids limit: the loop watches it as any child's (its end unheard)
        try:
            loop.call_soon_threadsafe(Child, loop, pid, process)
        except RuntimeError:  # the loop is closed: left to the orphan reaper, where it runs
            children.claims.forget(pid)
