"""The child processes this process reaps itself, claimed from their spawn until then.

Where orphans come to crontask (PID 1 of a container, a subreaper), ``runner.reaper`` reaps
the zombie children nobody else waits for; it must never take one that a part of crontask
waits for by pid (a command's process, git), or that part loses the exit status (and
``subprocess.Popen`` takes the ECHILD for a success). Each such part claims the pid here from
before its spawn until after it has reaped it.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Collection


class Claims:
    """The pids claimed, each from its spawn until it has been reaped, and the spawns under
    way (their pid not known yet), numbered in the order they begin. Thread-safe: spawns run
    in pools of threads. A pid is counted, not just held: once reaped it may be reused by a
    new spawn before its old owner has said so."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0
        self._under_way: set[int] = set()
        self._pids: collections.Counter[int] = collections.Counter()

    def begin(self) -> int:
        """Before a spawn: its number, for ``end``."""
        with self._lock:
            number = self._next
            self._next += 1
            self._under_way.add(number)
            return number

    def end(self, number: int, pid: int | None) -> None:
        """After the spawn ``number``: the pid it started (claimed), None if it failed."""
        with self._lock:
            self._under_way.discard(number)
            if pid is not None:
                self._pids[pid] += 1

    def forget(self, pid: int) -> None:
        """``pid`` has been reaped (not before: until then the pid cannot be reused)."""
        with self._lock:
            self._pids[pid] -= 1
            if self._pids[pid] <= 0:
                del self._pids[pid]

    def mark(self) -> int:
        """Every spawn begun before this call is numbered below the mark."""
        with self._lock:
            return self._next

    def reap_unclaimed(self, pids: Collection[int], mark: int, reap: Callable[[int], bool]) -> int:
        """``reap`` each of ``pids`` nobody claims, each known to have existed when ``mark`` was
        taken; none while a spawn begun before the mark has not told its pid (it could be any
        of them). How many ``reap`` said it reaped. The claims are held meanwhile: no pid is
        forgotten, so none is reaped by its owner and reused before ``reap`` looks at it."""
        with self._lock:
            if any(number < mark for number in self._under_way):
                return 0
            return sum(reap(pid) for pid in pids if pid not in self._pids)


claims = Claims()
