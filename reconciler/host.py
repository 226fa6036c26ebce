"""What the machine gives this process."""

from __future__ import annotations

import ctypes
import math
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# The soft limit on open files ``crontask run`` asks for. Each run in progress holds two (its
# output pipe and its process), so the 1 024 a systemd service or a shell starts with is about
# 500 runs at once, past which a spawn, a store connection or the API's accept fails with
# EMFILE. Commands inherit the limit (posix_spawn cannot set it for the child alone): 65 536
# is far beyond what a program meets by default, yet cheap for one that closes every
# descriptor up to the limit before it execs.
OPEN_FILES: Final = 65_536


_PR_SET_DUMPABLE: Final = 4


def keep_private() -> bool:
    """Make this process's ``/proc`` files that hold secrets (its environment, with the
    ``--db`` URL and tokens; its memory; its descriptors) unreadable to other processes of
    its user, and not ptrace-able by them: the commands it starts run as that user, and
    ``--task-env minimal`` keeps crontask's environment out of theirs but could not keep
    them from reading ``/proc/$PPID/environ``. (A command is dumpable again once it execs.)
    It also means no core dump. Returns whether it took; not on other systems than Linux."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    return bool(prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0)


def usable_cores(
    cgroups: Path = Path("/sys/fs/cgroup"), membership: Path = Path("/proc/self/cgroup")
) -> int:
    """The cores this process may use: its affinity (a container's cpuset), and no more than
    its CPU quota allows (a container's CPU limit, ``cpu.max``), rounded up. A pod limited to
    one CPU on a 64-core node would otherwise read a large folder with 64 worker processes
    within its memory limit."""
    try:
        cores = len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
    quota = cpu_quota(cgroups, membership)
    return cores if quota is None else max(1, min(cores, math.ceil(quota)))


def cpu_quota(cgroups: Path, membership: Path) -> float | None:
    """The CPUs this process's cgroups allow it (quota / period, the smallest of its cgroup
    and the cgroups above it), cgroup v2 or v1; None without a limit or when it cannot be
    read."""
    try:
        lines = membership.read_text(encoding="utf-8", errors="replace")[:65_536].splitlines()
    except OSError:
        return None
    found: list[float] = []
    for line in lines:
        _, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if controllers == "":  # v2: /sys/fs/cgroup/<path>/cpu.max, "max 100000" or "50000 100000"
            found += _limits(cgroups, path, lambda d: _read(d / "cpu.max"))
        elif "cpu" in controllers.split(","):  # v1: cfs_quota_us, -1 without a limit
            mount = cgroups / controllers

            def v1(d: Path) -> str | None:
                quota, period = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
                return None if quota is None or period is None else f"{quota} {period}"

            found += _limits(mount, path, v1)
    return min(found) if found else None


def _limits(mount: Path, path: str, read: Callable[[Path], str | None]) -> list[float]:
    """The quotas of ``path``'s cgroup and of those above it, under ``mount``."""
    found: list[float] = []
    parts = [p for p in path.split("/") if p and p not in (".", "..")]
    for depth in range(len(parts), -1, -1):
        text = read(mount.joinpath(*parts[:depth]))
        if text is None:
            continue
        quota, _, period = text.partition(" ")
        try:
            q, per = float(quota), float(period)
        except ValueError:  # "max": no limit here
            continue
        if q > 0 and per > 0:
            found.append(q / per)
    return found


def _read(path: Path) -> str | None:
    try:
        with path.open("rb") as file:
            return file.read(256).decode("ascii", errors="replace").strip()
    except OSError:
        return None


def raise_open_files(wanted: int = OPEN_FILES) -> tuple[int, int]:
    """Raise this process's soft limit on open files to ``wanted``, or to the hard limit if that
    is lower, as Go programs do at start; never lower it. Returns the limit before and after
    (``resource.RLIM_INFINITY`` for no limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):  # a kernel with a lower ceiling of its own (macOS's)
        return soft, soft
    return soft, target


@dataclass(frozen=True, slots=True)
class Birth:
    """When and where a process began: what tells it from a later process given the same pid
    (a pid is reused after the process ends, and after a reboot; in a container the main
    process is pid 1 every time)."""

    start: int  # /proc/<pid>/stat field 22: clock ticks from the boot to its start
    boot: str  # the kernel's boot id, shortened: a reboot changes it
    pid_namespace: int  # the inode of the pid namespace its pid is counted in


def birth(proc: str = "/proc") -> Birth | None:
    """This process's :class:`Birth`; None when ``proc`` cannot tell it (not Linux, or a
    ``/proc`` of another pid namespace than this process's: its pids would not be ours)."""
    own = _stat_fields(f"{proc}/self/stat")
    if own is None or own[0] != str(os.getpid()):
        return None
    boot = _read(Path(f"{proc}/sys/kernel/random/boot_id"))
    try:
        namespace = os.stat(f"{proc}/self/ns/pid").st_ino
        start = int(own[_START])
    except (OSError, ValueError):
        return None
    shortened = (boot or "").replace("-", "")[:_BOOT_CHARS]
    if len(shortened) < _BOOT_CHARS or not shortened.isalnum():
        return None
    return Birth(start, shortened.lower(), namespace)


def start_time(pid: int, proc: str = "/proc") -> int | None:
    """When process ``pid`` (of this process's pid namespace) started, as :class:`Birth`
    counts it; None if there is no such process, or it cannot be read."""
    fields = _stat_fields(f"{proc}/{pid}/stat")
    if fields is None or fields[0] != str(pid):
        return None
    try:
        return int(fields[_START])
    except (IndexError, ValueError):
        return None


# /proc/<pid>/stat: "pid (comm) state ..."; comm may hold spaces and parentheses, so the fields
# after it are split after its last ")". Field 22 (start time) is then the 20th.
_START: Final = 20
_BOOT_CHARS: Final = 8


def _stat_fields(path: str) -> list[str] | None:
    """The pid, then the fields after the command's name, of a ``/proc/<pid>/stat``."""
    try:
        with open(path, "rb") as file:
            text = file.read(4096).decode("ascii", errors="replace")
    except OSError:
        return None
    head, close, rest = text.rpartition(")")
    if not close:
        return None
    return [head.partition(" (")[0].strip(), *rest.split()]


def boot_clock() -> float:
    """The fence's clock: seconds that go on while the host is suspended (Linux's
    CLOCK_BOOTTIME; ``time.monotonic`` stops then). The others' judge (the database's
    ``now()``) counts that time: a replica whose host slept past its lease must fence, and
    count its membership as lapsed, as one paused by SIGSTOP does."""
    if sys.platform == "linux":
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    return time.monotonic()
