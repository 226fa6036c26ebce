"""The commands a dead crontask left running on this host: found at start-up, and stopped.

A command runs in a session of its own, so when crontask is killed (``kill -9``, the OOM
killer) on a host, outside a container or systemd's cgroup, its commands run on while the next
start marks their runs ``interrupted``; ``Forbid`` would then start the next slot beside one.
Each command carries its run's id and the instance that started it in its environment
(``CRONTASK_RUN_ID``, ``CRONTASK_ATTEMPT``, ``CRONTASK_INSTANCE``), and so do the processes it
starts unless they clear it. ``scan`` finds them; ``controller.instance`` decides which belong
to a run cut short by its instance's death, and ``stop`` stops their sessions as a run is
stopped: SIGTERM (and SIGCONT), then SIGKILL after the grace, in rounds until nothing of them
is left. The instance (``controller.instance``) is what keeps another crontask's commands out
of reach: runs of the same task and slot in another instance's store share the run id, never
it.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from reconciler.runner import group

log = logging.getLogger("crontask.runner")

_RUN_ID = b"CRONTASK_RUN_ID="
_ATTEMPT = b"CRONTASK_ATTEMPT="
_INSTANCE = b"CRONTASK_INSTANCE="
# The kernel bounds an environment by what exec takes; this bounds our read of one all the
# same (a process can grow its environ block, and /proc reads are not free).
_ENVIRON_MAX = 8 * 1024 * 1024
_POLL = 0.05
_ID_MAX = 512


@dataclass(frozen=True)
class Leftover:
    """What a process's environment says of the run it belongs to."""

    run_id: str
    attempt: int
    instance: str


def scan(proc: str = "/proc") -> dict[Leftover, set[int]]:
    """The sessions of the live processes that carry a run and an instance in their
    environment, by run: those of crontask's user (and, as root, everyone's). Anyone may set
    such an environment: what is found is only a claim, which ``controller.instance`` checks
    against the run store (a dead crontask of this host, and its run cut short)."""
    found: dict[Leftover, set[int]] = {}
    own = {os.getpid(), os.getsid(0)}
    try:
        entries = os.scandir(proc)
    except OSError:
        return found  # not Linux
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            run = _run_of(f"{proc}/{entry.name}")
            sid = _session_of(f"{proc}/{entry.name}") if run is not None else None
            if run is not None and sid is not None and sid > 1 and sid not in own:
                found.setdefault(run, set()).add(sid)
    return found


def _run_of(path: str) -> Leftover | None:
    try:
        with open(f"{path}/environ", "rb") as f:
            environ = f.read(_ENVIRON_MAX)
    except OSError:
        return None  # another user's, or gone since the listing
    if _INSTANCE not in environ:
        return None  # most processes: no need to split theirs
    values: dict[bytes, str] = {}
    for entry in environ.split(b"\0"):
        for name in (_RUN_ID, _ATTEMPT, _INSTANCE):
            if entry.startswith(name):
                values[name] = entry[len(name) :].decode(errors="replace")
    attempt = values.get(_ATTEMPT, "")
    # ASCII digits only: str.isdigit takes "²" too, which int() refuses.
    if len(values) < 3 or not (attempt.isascii() and attempt.isdigit()) or len(attempt) > 6:
        return None
    if len(values[_RUN_ID]) > _ID_MAX or len(values[_INSTANCE]) > _ID_MAX:
        return None  # no run's: the store's ids and owners are shorter
    return Leftover(values[_RUN_ID], int(attempt), values[_INSTANCE])


def _session_of(path: str) -> int | None:
    try:
        with open(f"{path}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # Fields after the command name (which may hold ')'): state, ppid, pgrp, session, ...
    fields = stat[stat.rfind(b")") + 2 :].split()
    if len(fields) < 4 or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[3])


def stop(
    sessions: Collection[int],
    grace: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> set[int]:
    """Stop ``sessions`` as a run is stopped; the ones that SIGKILL was sent to."""
    started = clock()
    for sid in sessions:
        group.signal_session(sid, signal.SIGTERM, fresh_since=started)
    alive = set(sessions)
    while alive:
        now = clock()
        alive = {s for s in alive if group.session_state(s, fresh_since=now) is group.Group.ALIVE}
        if not alive or now - started >= grace:
            break
        sleep(_POLL)
    # In rounds, all sessions together (each look at /proc serves them all): one KILL misses
    # the jobs a member that ignores SIGTERM starts in groups of their own after the last look.
    kills = [group.SessionKill(sid, fresh_since=time.monotonic()) for sid in alive]
    while pauses := [pause for kill in kills if (pause := kill.step()) is not None]:
        sleep(min(pauses))
    survived = sorted(kill.sid for kill in kills if kill.survived)
    if survived:
        log.warning(
            "left-over commands outlived SIGKILL: they are left running",
            extra={"fields": {"sessions": survived}},
        )
    return alive
