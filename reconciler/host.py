"""What the machine gives this process."""

from __future__ import annotations

import ctypes
import os
import resource
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


def usable_cores() -> int:
    """The cores this process may run on (its affinity: a container's cpuset), not the host's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


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
