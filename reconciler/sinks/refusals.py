"""What a refused request says: the status writer's and the Event recorder's when the API
server will not take a write, the API's for a failed authentication. No Kubernetes client is
imported here: the API and a crontask without Kubernetes use :class:`RefusalLog` too.

Contract:

- :func:`refusal` gives the log fields of a refused request: its status and reason, and what it
  asked for (``missing`` after a ``403``: the RBAC rule the ServiceAccount lacks).
- :class:`RefusalLog` lets a refusal of one kind be logged once every :data:`REFUSAL_EVERY`
  seconds, and counts the ones it held back meanwhile: a refusal comes again with every write
  (a status a second for an every-second task), and one line says as much as a thousand.
  Thread-safe (the status writer's workers share one); it keeps at most ``keep`` kinds, those
  past their period forgotten first, then the one logged longest ago (said again if it comes
  back): a flood of new kinds within one period does not grow it without limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Protocol

# A refusal of one kind is logged at most this often: it would come again with every write.
REFUSAL_EVERY = 600.0


class Answer(Protocol):
    """What :func:`refusal` reads of a refused request: an ``ApiException``'s, or an error's
    that carries them (``sources.kubernetes_jobs.JobApiError``; None: no answer)."""

    @property
    def status(self) -> int | None: ...

    @property
    def reason(self) -> str | None: ...


def refusal(err: Answer, what: str, namespace: str | None) -> dict[str, Any]:
    """Log fields for a request the API server refused: its status and reason, and what it
    asked for (``what``: ``resource: verb``), said to be ``missing`` when the answer was
    ``403`` (an RBAC rule the ServiceAccount lacks)."""
    where = f"{what} in namespace {namespace}" if namespace else what
    return {
        "status": err.status,
        "reason": err.reason,
        "missing" if err.status == 403 else "request": where,
    }


class RefusalLog:
    def __init__(
        self,
        every: float = REFUSAL_EVERY,
        *,
        clock: Callable[[], float] = time.monotonic,
        keep: int = 4096,
    ) -> None:
        self._every, self._clock, self._keep = every, clock, keep
        self._lock = threading.Lock()
        # kind -> when it was last logged, how many came since.
        self._kinds: dict[Hashable, tuple[float, int]] = {}

    def due(self, kind: Hashable) -> int | None:
        """None if a refusal of ``kind`` was logged less than ``every`` seconds ago (this one
        is counted); else how many were held back since the last line (log one now)."""
        with self._lock:
            now = self._clock()
            logged, since = self._kinds.get(kind, (None, 0))
            if logged is not None and now - logged < self._every:
                self._kinds[kind] = (logged, since + 1)
                return None
            # Moved to the end: the dict stays in the order the kinds were last logged.
            self._kinds.pop(kind, None)
            self._kinds[kind] = (now, 0)
            self._expire(now)
            return since

    def __len__(self) -> int:
        with self._lock:
            return len(self._kinds)

    def __contains__(self, kind: Hashable) -> bool:
        with self._lock:
            return kind in self._kinds

    def room(self) -> bool:
        """Whether a new kind is remembered without forgetting one logged within ``every``:
        the kinds logged longer ago are forgotten now (with what they held back), from the
        front, where they are."""
        with self._lock:
            now = self._clock()
            while self._kinds:
                first = next(iter(self._kinds))
                if now - self._kinds[first][0] < self._every:
                    break
                del self._kinds[first]
            return len(self._kinds) < self._keep

    def _expire(self, now: float) -> None:
        # In the order last logged: those logged longest ago, past their period first, go.
        while len(self._kinds) > self._keep:
            del self._kinds[next(iter(self._kinds))]
