"""Reaping the orphans that come to crontask when it is PID 1 of its PID namespace (a container
started without an init: ``ENTRYPOINT ["crontask"]``), or a child subreaper.

A command's own children that outlive it (a daemonizing tool, ``sh -c "(sleep 1 &)"``) are
handed to PID 1 when their parent ends, and stay zombies until PID 1 waits for them: without
this, a pod piles them up until its pids limit refuses every fork.

The rule: never reap a process that something in crontask waits for by pid. Its exit status
would be lost (a run recorded with the wrong exit code; ``subprocess.Popen`` takes the ECHILD
for a success). So there is no ``waitpid(-1)``: once a second the reaper reads ``/proc`` and
reaps, by pid, only the zombie children that cannot be crontask's own:

- What crontask starts either stays in crontask's session (forked workers) or leads a session
  of its own (commands, git: ``setsid`` before ``exec``). A zombie child that is a member of
  some other process's session is an orphan, reaped at once. One in crontask's session is
  never reaped here.
- A zombie that leads its own session may be a command whose exit ``runner.process`` has yet
  to collect: such a pid is claimed from its spawn until it is reaped there. A
  leader is reaped only once it has been a zombie for :data:`LEADER_GRACE` seconds (same pid,
  same start time, every scan), is not claimed (``reconciler.children``: commands and git are,
  from their spawn until they are reaped), and no spawn begun before the last scan is still
  waiting for its pid (a process can exit before the call that started it returns).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import threading
import time
from collections.abc import Iterable

from reconciler import children
from reconciler.aio import Ready

log = logging.getLogger("crontask.runner")

_PR_GET_CHILD_SUBREAPER = 37
# How long a session leader stays a zombie before it is taken for an orphan (see above): an
# orphan's zombie costs nothing meanwhile, and a claim missed by mistake is still covered.
LEADER_GRACE = 10.0


def adopts_orphans() -> bool:
    """True if orphaned processes are handed to this one: PID 1 of its namespace, or a child
    subreaper (set by whatever exec'd crontask; crontask does not make itself one)."""
    if os.getpid() == 1:
        return True
    flag = ctypes.c_int(0)
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return False
    return prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) == 0 and flag.value != 0


class _Stat:
    """What ``/proc/<pid>/stat`` says of a process that matters here."""

    __slots__ = ("leader", "parent", "session", "started", "zombie")

    def __init__(self, pid: int, raw: bytes) -> None:
        # The command name may hold spaces and parentheses: fields are counted from the last
        # ')'. After it: state, ppid, pgrp, session, ... and the start time is the 20th.
        fields = raw[raw.rfind(b")") + 2 :].split()
        self.zombie = fields[0] == b"Z"
        self.parent = int(fields[1])
        self.session = int(fields[3])
        self.leader = self.session == pid
        self.started = int(fields[19])


def _stat(pid: int) -> _Stat | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return _Stat(pid, f.read())
    except (OSError, ValueError, IndexError):
        return None  # gone (reaped) since it was listed


def _own_stat(me: int) -> _Stat | None:
    """This process's stat, None if ``/proc`` shows another PID namespace (its pids would
    not be ours to wait for) or none."""
    try:
        if os.readlink("/proc/self") != str(me):
            return None
    except OSError:
        return None
    return _stat(me)


def _reap(pid: int, started: int | None = None) -> bool:
    """Reap ``pid`` if it is (still) a zombie child, and the one that started at ``started``."""
    if started is not None:
        stat = _stat(pid)
        if stat is None or not stat.zombie or stat.started != started:
            return False
    with contextlib.suppress(ChildProcessError):  # not a child of ours (any more)
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    return False


class Reaper:
    """The component (see ``controller.manager``) that reaps orphans every ``interval``
    seconds, in a thread of its own: a loop busy with a burst of runs does not hold it up."""

    name = "reaper"

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.reaped = 0
        self._halt = threading.Event()
        self._me = os.getpid()
        self._session: int | None = None
        self._by_children = False
        # Session leaders that were zombies on the last scan (pid: start time, when first
        # seen a zombie), and the mark of the spawns begun before that scan ended.
        self._leaders: dict[int, tuple[int, float]] = {}
        self._mark = 0

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        me = _own_stat(self._me)
        if me is None:
            log.warning("cannot reap orphaned processes: /proc is not this PID namespace's")
            ready()
            await stop.wait()
            return
        self._session = me.session
        # Linux lists each thread's children where CONFIG_PROC_CHILDREN is set: far fewer
        # files to read than every process in the namespace.
        self._by_children = os.path.exists(f"/proc/self/task/{self._me}/children")
        log.info(
            "crontask reaps orphaned processes",
            extra={"fields": {"pid": self._me, "why": "pid 1" if self._me == 1 else "subreaper"}},
        )
        thread = threading.Thread(target=self._reap_until_halted, name="crontask-reaper")
        thread.daemon = True  # holds nothing: a process that exits need not wait for it
        thread.start()
        ready()
        try:
            await stop.wait()
        finally:
            self._halt.set()

    def _reap_until_halted(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self.sweep()
            except Exception:  # a bug here must not end the reaping for good
                log.exception("reaping orphaned processes failed; will try again")

    def sweep(self) -> int:
        """One scan: reap the orphans found (see the module docstring); how many."""
        orphans: list[int] = []
        leaders: dict[int, tuple[int, float]] = {}
        now = time.monotonic()
        for pid in self._children():
            stat = _stat(pid)
            if stat is None or not stat.zombie or stat.parent != self._me:
                continue
            if stat.leader:
                seen = self._leaders.get(pid)
                same = seen is not None and seen[0] == stat.started
                leaders[pid] = (stat.started, seen[1] if seen and same else now)
            elif stat.session != self._session:
                orphans.append(pid)
        mark = children.claims.mark()  # after the scan: whatever it saw was spawned before the mark
        previous_mark = self._mark
        self._leaders, self._mark = leaders, mark
        settled = [pid for pid, (_, since) in leaders.items() if now - since >= LEADER_GRACE]
        reaped = sum(_reap(pid) for pid in orphans)
        reaped += children.claims.reap_unclaimed(
            settled, previous_mark, lambda pid: _reap(pid, leaders[pid][0])
        )
        if reaped:
            self.reaped += reaped
            log.debug(
                "orphaned processes reaped",
                extra={"fields": {"reaped": reaped, "total": self.reaped}},
            )
        return reaped

    def _children(self) -> Iterable[int]:
        if not self._by_children:
            return (int(name) for name in os.listdir("/proc") if name.isdigit())
        children: list[int] = []
        for tid in os.listdir(f"/proc/{self._me}/task"):
            try:
                with open(f"/proc/{self._me}/task/{tid}/children", "rb") as f:
                    children.extend(int(pid) for pid in f.read().split())
            except OSError:
                continue  # the thread ended since the listing
        return children
