"""The Job watches (one a namespace) stop together: each is told at once, and their threads
share one wait. One after the other, each waited for up to its own 5 s when the API server
does not answer, so the stop grew by 5 s a namespace, past the pod's grace."""

from __future__ import annotations

import time
from typing import Any

import pytest

from reconciler.sources.kubernetes_watch import stop_all


class Stuck:
    """An informer whose thread never ends: a join waits its whole timeout (on a fake clock)."""

    def __init__(self, clock: list[float], told: list[tuple[int, float]], n: int) -> None:
        self.clock, self.told, self.n = clock, told, n

    def stop(self, timeout: float = 5.0) -> None:
        self.told.append((self.n, timeout))
        self.clock[0] += timeout


def test_three_stuck_watches_stop_within_one_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    told: list[tuple[int, float]] = []
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    informers: list[Any] = [Stuck(clock, told, n) for n in range(3)]
    stop_all(informers, timeout=5.0)
    assert clock[0] - 100.0 == pytest.approx(5.0)  # not 15
    assert told[:3] == [(0, 0.0), (1, 0.0), (2, 0.0)]  # each told before any is waited for
    assert [n for n, _ in told[3:]] == [0, 1, 2]
