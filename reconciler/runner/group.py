"""The process group a command run owns: signalling it, and knowing when it is empty.

A command is started in a new session, so its pid is its group's id and its session's, and
whatever it forks stays in that group unless it leaves it. ``CommandRun`` signals the group,
never single pids, and asks ``group_state`` whether anything in it still lives.

Some commands leave the group without meaning to leave the run: GNU ``timeout``, a shell with
job control (``set -m``), anything that calls ``setpgid``. They stay in the session, so a run
that is stopped (a timeout, a stop, shutdown) is stopped as a session: ``signal_session`` and
``session_state`` take every group of it, read from ``/proc``, and ``SessionKill`` kills it in
rounds until a fresh look finds nothing of it left (a member may make new groups faster than
one look can list them). Only a process that starts a session of its own (``setsid``, a daemon
on purpose) is out of reach. A run that ends by itself looks at, and stops, its own group
only: what it left in other groups of its session is not stopped (as documented), that look
costs no ``/proc`` scan when the group is gone, as it almost always is, and a scan per run
would cost a busy instance a tenth of a core.

Every SIGTERM (``signal_group``, hence ``signal_session``) is followed by SIGCONT: a stopped
process (SIGSTOP, SIGTSTP) would keep the TERM pending, its handler unrun, until SIGKILL.

A process on its way out of the group is still in it for a moment: the child a shell forks
for ``setsid daemon &`` is in the group until the ``setsid`` program it execs has called
setsid(2), and its shell may exit before that. ``settled_group_state`` lets what the main
process left have a short while to leave before the run decides it was left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import math
import os
import signal
import time

from reconciler.runner.child import has_exited

# How stale a /proc census may be before it is taken again (see _GroupCensus).
_CENSUS_MAX_AGE = 0.1
# SIGKILL rounds for a session (``SessionKill``): how many looks after the first kill, and the
# pauses between a kill and the next look (the kernel needs a moment to end what it killed).
_KILL_ROUNDS = 15
_KILL_PAUSE_FIRST = 0.005
_KILL_PAUSE_MAX = 0.1
# Looking whether a settling group has emptied (``settled_group_state``): a killpg(0) each
# time, soon at first (a setsid is a fork and an exec away), then less often.
_SETTLE_POLL_FIRST = 0.001
_SETTLE_POLL_MAX = 0.02


class Group(enum.Enum):
    """What is left of a group: nothing, only zombies (dead, not yet reaped), or a live one."""

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
        # Session -> its groups with a live member; None: /proc cannot be read.
        self._sessions: dict[int, frozenset[int]] | None = None

    def live_groups(self, session: int, *, fresh_since: float) -> frozenset[int] | None:
        """The groups of ``session`` with a live member, per a scan begun after
        ``fresh_since`` (time.monotonic).

        None when ``/proc`` cannot be read (not Linux): then nothing is known to be a zombie.
        """
        now = time.monotonic()
        if self._scanned_at < fresh_since or now - self._scanned_at > _CENSUS_MAX_AGE:
            self._sessions = _scan_live_groups()
            self._scanned_at = now
        return None if self._sessions is None else self._sessions.get(session, frozenset())


def _proc_stats() -> list[tuple[int, bytes]] | None:
    """Each process's pid and ``/proc/<pid>/stat``; None where ``/proc`` cannot be listed."""
    try:
        entries = os.scandir("/proc")
    except OSError:
        return None
    found: list[tuple[int, bytes]] = []
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    found.append((int(entry.name), f.read()))
            except OSError:
                continue  # exited (and reaped) since the directory was listed
    return found


def _after_name(stat: bytes) -> list[bytes]:
    # The command name may contain spaces and parentheses: fields are counted from the last
    # ')'. After it come: state, ppid, pgrp, session, ...
    return stat[stat.rfind(b")") + 2 :].split()


def _scan_live_groups() -> dict[int, frozenset[int]] | None:
    stats = _proc_stats()
    if stats is None:
        return None
    sessions: dict[int, set[int]] = {}
    for _, stat in stats:
        fields = _after_name(stat)
        if len(fields) >= 4 and fields[0] not in (b"Z", b"X"):
            sessions.setdefault(int(fields[3]), set()).add(int(fields[2]))
    return {session: frozenset(groups) for session, groups in sessions.items()}


_census = _GroupCensus()


def signal_group(pgid: int | None, sig: int) -> None:
    # killpg(0) would signal our own group and killpg(1) means kill(-1): every process we may
    # signal. Neither can be the pgid of a child started in a new session, but a bug here would
    # take the whole host down with it, so refuse them (and our own group) outright.
    if pgid is None or pgid <= 1 or pgid == os.getpgrp():
        return
    # ESRCH: the group is already gone. EPERM: only processes we may not signal are left (e.g.
    # a setuid program); there is nothing more we can do about them.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    if sig == signal.SIGTERM:
        # A stopped process (SIGSTOP, SIGTSTP) keeps a TERM pending, its handler unrun, until
        # it is continued: without SIGCONT it would only end by SIGKILL after the whole kill
        # grace. Sent after the TERM, so the TERM is what it sees first as it resumes (as
        # systemd and Docker do). SIGKILL needs none: it ends a stopped process as it is.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGCONT)


# The kernel's PF_EXITING (``/proc/<pid>/stat`` field 9, ``flags``): the process is on its way
# out (it may take seconds: a large memory is being freed).
_PF_EXITING = 0x4


def held(pid: int) -> bool:
    """Whether our child ``pid`` has not exited and a thread of it lives on, not on its way out
    (an uninterruptible sleep after SIGKILL: its exit may never come). A main thread that
    exited waits as a zombie, unreported, for the other threads: one held keeps it."""
    if has_exited(pid):
        return False
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False  # gone, or not Linux
    return any(_thread_held(f"/proc/{pid}/task/{tid}/stat") for tid in threads)


def _thread_held(stat: str) -> bool:
    try:
        with open(stat, "rb") as f:
            fields = _after_name(f.read())
    except OSError:
        return False  # gone meanwhile
    if len(fields) <= 6 or fields[0] in (b"Z", b"X", b"x"):
        return False
    return int(fields[6]) & _PF_EXITING == 0


def group_state(pgid: int, *, fresh_since: float) -> Group:
    """What is left of the group ``pgid`` (a run's own: its session's id too)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return Group.GONE
    except PermissionError:
        pass  # it exists, we just may not signal all of it
    live = _census.live_groups(pgid, fresh_since=fresh_since)
    if live is None or pgid in live:
        return Group.ALIVE
    return Group.ZOMBIES_ONLY


async def settled_group_state(pgid: int, within: float) -> Group:
    """What is left of the group ``pgid`` once its live members have had ``within`` seconds to
    leave it: at once if none is left, as soon as the group is gone, else per a fresh look at
    the end. Only ``killpg(pgid, 0)`` is asked meanwhile: no ``/proc`` scan per poll."""
    state = group_state(pgid, fresh_since=time.monotonic())
    if state is not Group.ALIVE:
        return state  # the usual case: nothing to wait for
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    delay = _SETTLE_POLL_FIRST
    while (left := deadline - loop.time()) > 0:
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 2, _SETTLE_POLL_MAX)
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return Group.GONE
        except PermissionError:
            pass
    return group_state(pgid, fresh_since=time.monotonic())


def signal_session(sid: int | None, sig: int, *, fresh_since: float, leader: bool = True) -> None:
    """Signal every group of the session ``sid`` with a live member (per a ``/proc`` scan begun
    after ``fresh_since``, or at most ``_CENSUS_MAX_AGE`` old), and the group ``sid`` itself
    unless ``leader`` is False (it was signalled already)."""
    if leader:
        signal_group(sid, sig)
    if sid is None:
        return
    for pgid in _census.live_groups(sid, fresh_since=fresh_since) or ():
        if pgid != sid:
            signal_group(pgid, sig)


def session_state(sid: int, *, fresh_since: float) -> Group:
    """What is left of the session ``sid``: its own group's state, unless another group of it
    still has a live member."""
    state = group_state(sid, fresh_since=fresh_since)
    if state is Group.ALIVE:
        return state
    live = _census.live_groups(sid, fresh_since=fresh_since)
    return Group.ALIVE if live and live - {sid} else state


class SessionKill:
    """SIGKILL the session ``sid`` until a look at ``/proc`` begun after the last kill finds
    nothing of it alive.

    One kill is not enough: it goes to the groups a scan listed, and a member that keeps
    forking (a shell with ``set -m`` starting job after job, each in a group of its own) makes
    groups the scan could not list; those jobs would outlive the run in its session. A fork
    into a group that is being killed is killed with it (the kernel sees to that), so what
    escapes a round is only what moved to a new group before the kill: the next look finds it.

    The caller drives it: ``step()`` kills, and says how long to pause before the next step,
    or None once the session is gone or the rounds are spent (``survived`` then says whether
    something lived on: a process that cannot die, in an uninterruptible sleep, or one that
    forks faster than the rounds kill). Runs killed together (a shutdown) pause alike, so the
    first look after their kills serves them all (see ``_GroupCensus``).
    """

    def __init__(self, sid: int, *, fresh_since: float) -> None:
        self.sid = sid
        self.survived = False
        self._fresh_since = fresh_since  # the first kill may use a census shared since then
        self._round = 0
        self._pause = _KILL_PAUSE_FIRST
        self._done = False

    def step(self) -> float | None:
        """One round: look (but for the first), kill what is alive; the pause before the next
        round, or None: nothing more to do."""
        if self._done:
            return None
        if self._round:
            state = session_state(self.sid, fresh_since=self._fresh_since)
            if state is not Group.ALIVE or self._round > _KILL_ROUNDS:
                # A last KILL to the leader's group: harmless to zombies, and it catches a
                # member forked while /proc was scanned.
                if state is not Group.GONE:
                    signal_group(self.sid, signal.SIGKILL)
                self.survived = state is Group.ALIVE
                self._done = True
                return None
        self._round += 1
        signal_session(self.sid, signal.SIGKILL, fresh_since=self._fresh_since)
        self._fresh_since = time.monotonic()  # the next look must begin after this kill
        pause, self._pause = self._pause, min(self._pause * 2, _KILL_PAUSE_MAX)
        return pause


async def kill_session(sid: int, *, fresh_since: float) -> bool:
    """``SessionKill`` on the event loop; whether something of the session survived it."""
    kill = SessionKill(sid, fresh_since=fresh_since)
    while (pause := kill.step()) is not None:
        await asyncio.sleep(pause)
    return kill.survived


def kill_children_named(name: str) -> list[int]:
    """SIGKILL the children of this process named ``name`` (their ``comm``, per ``/proc``), and
    say which. A child that has not reached its ``exec`` yet still bears the name of the thread
    that cloned it (``runner.process`` names each of its threads apart): this is how a start
    stuck before its ``exec`` (a program or working directory on a file system that does not
    answer) is ended, so that it never runs its program. A child of ours cannot be reaped
    meanwhile by anyone but us, so its pid cannot have been reused between the look and the
    kill."""
    parent, wanted = os.getpid(), os.fsencode(name)[:15]
    killed: list[int] = []
    for pid, stat in _proc_stats() or ():  # not Linux: such a start returns when it does
        comm = stat[stat.find(b"(") + 1 : stat.rfind(b")")]
        fields = _after_name(stat)
        if len(fields) >= 2 and int(fields[1]) == parent and comm == wanted:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed
