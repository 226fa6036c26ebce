"""Run one command for one run attempt, on the reconciler's asyncio event loop.

Contract:

* ``CommandRun(args, env=...)`` describes one attempt and ``await run()`` performs it, once.
  Process failures (non-zero exit, death by signal, timeout, failure to start) are outcomes
  (:class:`Outcome`), never exceptions.
* No shell: ``args[0]`` is looked up on the ``PATH`` of ``env`` (exec semantics; ``os.defpath``
  when ``env`` has no ``PATH``), and ``env`` is the complete environment, passed as is.
* The process is started in a new session, hence its own process group, and the run owns that
  group: whenever the run ends (exit, timeout, ``stop()``, cancellation) whatever is left in the
  group gets SIGTERM (and SIGCONT, so that a stopped process acts on it: ``group.signal_group``),
  then SIGKILL after ``kill_grace`` seconds if anything in it is still alive.
  After an exit, what is left is first given ``_SETTLE`` seconds to leave the group (no wait
  when nothing is left), and other groups of the session are left alone. A run that is stopped
  is stopped as a session, its other groups too, SIGKILL in rounds until nothing of it is left
  (``group.SessionKill``); a main process those rounds do not end (an uninterruptible sleep)
  is given up on, left running (``Child.give_up``): the run ends without waiting for it. A
  process that leaves the session on purpose (``setsid``, daemons) is beyond reach, but it
  cannot keep ``run()`` waiting: output is read for at most ``_DRAIN_TIMEOUT`` more seconds.
* stdin is ``/dev/null``; stdout and stderr share one pipe, so their interleaving is preserved,
  and only the last ``output_limit`` bytes are kept, however much the command prints.
* ``timeout`` runs from ``run()`` (or from the instant of ``start_at``, if later) to the exit of
  the main process: the start is part of it. At the deadline the group is terminated as above
  and the outcome is ``TIMED_OUT`` / ``"DeadlineExceeded"``.
* ``stop(reason)`` terminates the group the same way; ``run()`` then returns ``FAILED`` with that
  reason. Cancelling ``run()`` terminates the group before ``CancelledError`` propagates.
* A start that does not return (a program or working directory on a file system that does not
  answer) is given up at the deadline, or ``kill_grace`` after a stop or a cancellation, and
  the outcome says its process could not be started: none is started after that, or, if the
  start comes back all the same, that process's session is killed at once
  (``reconciler.runner.process``). Nothing waits for it: not the run, nor its pool of threads.
* How each end is told (status, reason, message, exit code) is ``runner.command_outcome``'s.

Everything but the fork and exec runs on the event loop (one pipe reader, one pidfd and a few
timers per run), so thousands of runs can be in flight at once without a thread each; the
process is started by the spawner's small pool of threads, on every core (see
``reconciler.runner.process``). ``stop()`` must be called from the event loop's thread. POSIX
only.
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence

from reconciler.runner.base import TOO_LATE, Outcome
from reconciler.runner.command_outcome import Cut, End, exited, given_up, not_started, start_failed
from reconciler.runner.group import (
    Group,
    group_state,
    held,
    kill_session,
    session_state,
    settled_group_state,
    signal_group,
    signal_session,
)
from reconciler.runner.output import TailReader
from reconciler.runner.process import Child, Withdrawn, has_exited, spawn_soon

__all__ = ["CommandRun", "Cut"]

log = logging.getLogger("crontask.runner")

# Once the main process and its group are gone, only one that escaped holds the pipe: waited 1 s.
_DRAIN_TIMEOUT = 1.0
# After the main process has exited, what it left in its group may be on its way out: the
# child a shell forked for ``setsid daemon &`` stays in the group until the setsid program it
# execs has called setsid(2), and the shell may well exit first. Terminating the group at once
# would kill the daemon about half the time; what is still in the group after this long was
# left behind. A run whose group is empty does not wait (``group.settled_group_state``).
_SETTLE = 0.1
# Polling for the group to empty after SIGTERM: fast at first (most commands die at once),
# then backing off so that long grace periods cost little.
_POLL_FIRST = 0.01
_POLL_MAX = 0.1


# Supervisors that outlive a run() call cancelled twice: a strong reference keeps them from being
# garbage-collected before they have finished killing their group.
_background: set[asyncio.Task[None]] = set()


class _GivenUp(Exception):
    """The start did not return in time: it is abandoned (see ``_spawn``)."""


def _report_began(began: Callable[[float], None] | None, child: Child) -> None:
    """Tell the caller when the process began; its bug does not stop the supervision."""
    if began is None or child.began is None:
        return
    try:
        began(child.began)
    except Exception:
        log.exception("could not report a started process", extra={"fields": {"pid": child.pid}})


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
        self._child: Child | None = None  # given up on if SIGKILL does not end it
        self._spawned = False
        self._exited = False  # the main process is gone: stop() no longer changes anything
        self._end: End | None = None
        self._stop_reason: str | None = None
        self._terminator: asyncio.Task[None] | None = None
        self._escalated = False  # SIGKILL was needed after the grace period
        self._settling = False  # exited; what it left has a moment to leave (see _SETTLE)
        self._cut: Cut | None = None  # see kill_now
        self._start_at: float | None = None  # see start_at()
        self._start_until: float | None = None  # see start_at()
        self._too_late = False  # the spawner's thread found ``_start_until`` past
        self._began: Callable[[float], None] | None = None
        self._start_by: float | None = None  # the deadline, on time.monotonic()'s clock
        self._start_asked = False  # a spawner's thread is (or was) starting the process
        self._spawn_timer: asyncio.Timeout | None = None  # while the start is under way

    @property
    def pid(self) -> int | None:
        return self._pid

    def kill_now(self, fresh_since: float) -> bool:
        """SIGKILL the run's whole session at once, without the kill grace (a second stop
        signal; ``fresh_since``: a ``/proc`` census that new may serve, see ``group``).
        Nothing is killed when there is nothing to kill: not started yet, or reaped with
        nothing left to end. Reaped but its session still being terminated (what it left
        ignores SIGTERM), or what it left still given its moment to leave (``_SETTLE``), the
        session is killed all the same: a session whose members live keeps its id from being
        any new process's pid.

        Whether this cut something short, and what (``cut``, read once ``run()`` returned,
        for the run's record): a termination (SIGTERM sent, the kill grace running), whatever
        began it (a timeout, a stop for any reason, the end of what an exit left), of the
        command itself
        (``Cut.RUN``: still alive as it was killed) or only of what it left (``Cut.LEFTOVERS``:
        it had exited by itself, even just before, and something of its session lived on).
        Nothing for a process not yet told to end, for what is still given its moment to leave,
        and when nothing of the termination was left alive: their end is not a termination
        cut short, and the record says how they ended (the caller stops a run before this)."""
        if self._pid is None:
            return False
        terminating = not (self._terminator is None or self._terminator.done())
        if self._exited and not (terminating or self._settling):
            return False
        # Looked at before the kill: an exit the loop has not handled yet is the command's own.
        alive = not self._exited and not has_exited(self._pid)
        leftovers = terminating and not alive and self._session_alive(fresh_since)
        signal_session(self._pid, signal.SIGKILL, fresh_since=fresh_since)
        if terminating and (alive or leftovers):
            self._cut = Cut.RUN if alive else Cut.LEFTOVERS
        return self._cut is not None

    @property
    def cut(self) -> Cut | None:
        """What ``kill_now`` cut short, as the run ended: ``Cut.RUN`` only if SIGKILL is what
        ended the command; None if it exited by itself between the look and the kill."""
        return self._cut

    def _session_alive(self, fresh_since: float) -> bool:
        return session_state(self._pid or 0, fresh_since=fresh_since) is Group.ALIVE

    def start_at(
        self, when: float | None, began: Callable[[float], None], until: float | None = None
    ) -> None:
        """Start the process no earlier than ``when`` (``time.monotonic()``; None: at once):
        the spawner's thread waits for it, and starts nothing if the run was stopped
        meanwhile, or if it gets there after ``until`` (this process was away: ``run()`` then
        returns the reason ``TOO_LATE``). ``began`` hears the instant the process started,
        as the spawner's thread noted it."""
        self._start_at = when
        self._start_until = until
        self._began = began

    def stop(self, reason: str) -> None:
        """Ask the command to stop: SIGTERM the group now, SIGKILL it after ``kill_grace``.

        ``run()`` then returns ``FAILED`` with ``reason``. Called before ``run()`` (or while it is
        still spawning), the process is never started (or is terminated as soon as it exists).
        No-op once the process has exited, or if the run is already ending (first cause wins).
        An exit the loop has not handled yet counts: the run ended on its own
        (``process.has_exited``).
        """
        if self._exited or self._end is not None:
            return
        if self._spawned and has_exited(self._pid):
            return  # run() returns that exit, once the loop hears of it
        self._end = End.STOPPED
        self._stop_reason = reason
        self._begin_termination()

    async def run(self) -> Outcome:
        """Start the process and wait for it; see the module docstring."""
        if self._run_called:
            raise RuntimeError("CommandRun.run() may only be called once")
        self._run_called = True
        self._loop = asyncio.get_running_loop()
        if self._end is End.STOPPED:
            self._began = None  # never called (see _supervise)
            self._exited = True
            self.started.set()
            return not_started(self._stop_reason)
        # The work is a task of its own, which cancelling run() does not reach (it cancels the
        # future awaited): cancelling must not abandon a live process group, but terminate it.
        answer: asyncio.Future[Outcome] = self._loop.create_future()
        supervisor = self._loop.create_task(self._answer(answer))
        try:
            return await answer
        except asyncio.CancelledError:
            if self._end is None:
                self._end = End.CANCELLED
            self._begin_termination()  # if still spawning, _supervise does it once spawned
            # Wait for the group to be gone before letting the cancellation through. A second
            # cancellation stops the waiting; the supervisor then finishes in the background.
            _background.add(supervisor)
            supervisor.add_done_callback(_background.discard)
            await asyncio.wait([supervisor])
            raise

    def _wanted(self) -> bool:
        """Still to be started: asked from the spawner's thread just before it starts the
        process. Noted first, then read: if the loop, which sets ``_end`` before it reads
        ``_start_asked`` (``_given_up``), reads False, this read sees its ``_end``."""
        self._start_asked = True
        now = time.monotonic()
        if self._start_until is not None and now > self._start_until:
            self._too_late = True  # read on the loop once this start is withdrawn
        elif self._end is None and (self._start_by is None or now < self._start_by):
            return True
        self._start_asked = False  # withdrawn: it starts nothing
        return False

    def _begin_termination(self) -> None:
        if not self._spawned:
            self._hurry_start()
            return
        if self._exited or self._terminator is not None:
            return
        assert self._loop is not None  # spawned implies run() is in progress
        self._terminator = self._loop.create_task(self._terminate_group(session=True))

    async def _terminate_group(self, *, session: bool) -> None:
        """SIGTERM the group; SIGKILL it after ``kill_grace`` if anything in it is still alive.

        ``session``: the run is stopped (a timeout, a stop, a cancellation), so every group of
        its session goes too (see ``runner.group``). Not when the command exited by itself:
        then only what it left in its own group is its run's to end, whatever else lives in
        its session."""
        assert self._pid is not None
        loop = asyncio.get_running_loop()
        term_sent_at = time.monotonic()
        signal_group(self._pid, signal.SIGTERM)
        deadline = loop.time() + self._kill_grace
        delay, swept = _POLL_FIRST, not session
        look = session_state if session else group_state
        while True:
            # Sleeping before the first look gives the group a moment to act on the signal, and
            # lets runs terminated together (timeouts in one tick, shutdown) share one census.
            await asyncio.sleep(min(delay, max(deadline - loop.time(), 0)))
            delay = min(delay * 2, _POLL_MAX)
            if not swept:
                # The session, not the group alone (see runner.group): what left the group gets
                # its TERM from that shared census, not from a /proc scan of its own per run.
                signal_session(self._pid, signal.SIGTERM, fresh_since=term_sent_at, leader=False)
                swept = True
            state = look(self._pid, fresh_since=term_sent_at)
            if state is Group.GONE:
                return
            if state is Group.ZOMBIES_ONLY and not held(self._pid):  # a thread outlives it?
                # Nothing left to wait for. The KILL is harmless to zombies (which keep the
                # pgid from being reused) and catches a member forked while /proc was scanned.
                signal_group(self._pid, signal.SIGKILL)
                return
            if loop.time() >= deadline:
                break
        self._escalated = True
        if not session:
            # A fork into a group being killed is killed with it: one KILL ends the group.
            signal_group(self._pid, signal.SIGKILL)
            return
        # In rounds until nothing of the session is left: one KILL misses the jobs a member
        # that ignores SIGTERM starts in groups of their own after the last look.
        if await kill_session(self._pid, fresh_since=term_sent_at):
            log.warning(
                "processes of a run's session outlived SIGKILL: they are left running",
                extra={"fields": {"pid": self._pid}},
            )
        # Its exit may never come (an uninterruptible sleep, of a thread of it too): the run ends
        # without it. Not when it is on its way out (freeing a large memory takes a while).
        if self._child and held(self._pid):
            self._child.give_up()

    def _hurry_start(self) -> None:
        """The run ends while its process is being started: the start is waited for as long
        as a process is given to end after SIGTERM (``kill_grace``), then given up."""
        timer = self._spawn_timer
        if timer is None or self._loop is None or timer.expired():
            return  # not begun (it never will: see _wanted), or being given up already
        hurried = self._loop.time() + self._kill_grace
        when = timer.when()
        if when is None or hurried < when:
            timer.reschedule(hurried)

    def _deadline(self) -> float | None:
        """The run's deadline on the loop's clock; ``_start_by``, the same on the clock of the
        spawner's threads."""
        if self._timeout is None:
            return None
        assert self._loop is not None
        now = time.monotonic()
        self._start_by = max(now, self._start_at or now) + self._timeout
        return self._loop.time() + (self._start_by - now)

    async def _spawn(self, deadline: float | None) -> tuple[Child, int]:
        """The process and its pipe. Raises ``_GivenUp`` if the start has not returned by
        ``deadline``, or soon enough after the run was ended (``_hurry_start``)."""
        timer = self._spawn_timer = asyncio.timeout_at(deadline)
        try:
            async with timer:
                # Our own pipe: we must be able to stop reading and close it while a stray
                # process still holds the write end (a stream transport would stay open until
                # EOF).
                return await spawn_soon(
                    self._args,
                    env=self._env,
                    cwd=self._working_dir,
                    start_at=self._start_at,
                    wanted=self._wanted,
                )
        except TimeoutError:  # ours, or a start that failed with ETIMEDOUT (an OSError)
            if timer.expired():
                raise _GivenUp from None
            raise
        finally:
            self._spawn_timer = None

    async def _answer(self, answer: asyncio.Future[Outcome]) -> None:
        """``_supervise``'s outcome or error, set on ``answer``: a shield's, one wake-up less."""
        try:
            outcome = await self._supervise()
        except asyncio.CancelledError:  # the loop going away: run() is cancelled with it
            answer.cancel()
            raise
        except BaseException as exc:
            if answer.done():  # run() was cancelled: none to tell but the log
                log.error("supervising a cancelled command failed", exc_info=exc)
            else:
                answer.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            if not answer.done():
                answer.set_result(outcome)

    async def _supervise(self) -> Outcome:
        assert self._loop is not None
        # Held here, not by the attempt: the caller's callback refers to the caller's run,
        # which holds this attempt, and that cycle would be left to the garbage collector.
        began, self._began = self._began, None
        deadline = self._deadline()
        if self._end is not None:  # stopped or cancelled before this task began
            self._exited = True
            self.started.set()
            return not_started(self._stop_reason)
        try:
            child, read_fd = await self._spawn(deadline)
        except Withdrawn:  # stopped, timed out, or too late, before a thread began the start
            self._exited = True
            self.started.set()
            if self._too_late and self._end is None:
                return not_started(TOO_LATE)
            return not_started(self._stop_reason) if self._end is not None else self._given_up()
        except _GivenUp:
            self._exited = True
            self.started.set()
            return self._given_up()
        # RuntimeError: the spawner's thread could not start (a pids limit reached).
        except (OSError, ValueError, RuntimeError, subprocess.SubprocessError) as exc:
            self._exited = True
            self.started.set()
            return start_failed(exc, self._args[0], self._working_dir, self._env.get("PATH"))
        except BaseException:
            self.started.set()
            raise

        self._pid, self._child = child.pid, child
        self._spawned = True
        self.started.set()
        _report_began(began, child)
        reader = TailReader(self._loop, read_fd, self._output_limit)
        try:
            if self._end is not None:
                self._begin_termination()  # stop() or cancellation arrived while spawning
            returncode = await self._wait_main(child, deadline)
            self._exited = True
            if self._cut is Cut.RUN and returncode != -signal.SIGKILL:
                self._cut = None  # it exited by itself as the kill came: not killed (kill_now)
            # The run owns its group: what the main process left behind goes with it.
            leftovers = self._terminator is None and await self._stop_leftovers()
            if self._terminator is not None:
                await self._terminator
            await reader.drain(_DRAIN_TIMEOUT)
        except asyncio.CancelledError:
            # run() shields this task, so this is the event loop going away: no time for grace.
            signal_session(self._pid, signal.SIGKILL, fresh_since=-math.inf)
            child.abandon()
            raise
        finally:
            reader.close()
        return exited(
            returncode,
            self._end,
            timeout=self._timeout,
            stop_reason=self._stop_reason,
            leftovers=leftovers,
            escalated=self._escalated,
            kill_grace=self._kill_grace,
            output=reader.text(),
            pid=self._pid,
        )

    async def _stop_leftovers(self) -> bool:
        """After the command exited by itself: whether it left something in its own group, which
        is then terminated (``_terminator``). Its own group only: what it left in other groups
        of its session is not stopped (as documented), whether or not its group held some too."""
        assert self._loop is not None
        assert self._pid is not None
        self._settling = True
        try:
            state = await settled_group_state(self._pid, _SETTLE)
        finally:
            self._settling = False
        if state is not Group.ALIVE:
            return False
        self._terminator = self._loop.create_task(self._terminate_group(session=False))
        return True

    async def _wait_main(self, child: Child, deadline: float | None) -> int:
        if deadline is None:
            return await child.exited()
        try:
            async with asyncio.timeout_at(deadline):
                return await child.exited()
        except TimeoutError:
            # A busy (or paused) loop may handle the exit and the deadline in one pass, and
            # the deadline then wins: the process that exited in time did not time out.
            if not has_exited(child.pid):
                if self._end is None:
                    self._end = End.TIMED_OUT
                self._begin_termination()
            return await child.exited()

    def _given_up(self) -> Outcome:
        """The start did not return in time, and nothing waits for it any more."""
        if self._end is None:
            self._end = End.TIMED_OUT
        # Read after _end is set: see _wanted.
        return given_up(
            self._end,
            start_asked=self._start_asked,
            command=self._args[0],
            working_dir=self._working_dir,
            timeout=self._timeout,
            stop_reason=self._stop_reason,
        )
