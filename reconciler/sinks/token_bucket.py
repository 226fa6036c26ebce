"""The rate limit of the Kubernetes writers: a token bucket, as client-go's flowcontrol gives
its clients.

The status writer takes a token before each request, and the Events recorder before each
Event (one bucket overall, one per object), so that thousands of tasks changing at once cannot
flood the API server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; :meth:`take` waits for one."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst, self._clock = rate, float(burst), clock
        self._tokens = float(burst)
        self._at = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def try_take(self) -> bool:
        with self._lock:
            self._refill()
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False

    def take(self, stop: threading.Event | None = None) -> bool:
        """Wait for a token; False if ``stop`` was set first."""
        while True:
            with self._lock:
                self._refill()
                if self._tokens >= 1:
                    self._tokens -= 1
                    return True
                wait = (1 - self._tokens) / self.rate
            if stop is not None and stop.wait(wait):
                return False
            if stop is None:
                time.sleep(wait)
