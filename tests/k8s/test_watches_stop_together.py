"""The Job watches (one a namespace) stop together: each is told at once, and their threads
share one wait. One after the other, each waited for up to its own 5 s when the API server
does not answer, so the stop grew by 5 s a namespace, past the pod's grace."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config

from reconciler.sources import kubernetes_jobs
from reconciler.sources.kubernetes_jobs import JobWatch
from reconciler.sources.kubernetes_watch import stop_all
from tests.k8s.emulator.fixtures import serve


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


def test_the_job_watch_stops_its_namespaces_together(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``JobWatch.stop`` hands all its namespaces' informers to ``stop_all`` at once."""
    handed: list[list[Any]] = []
    monkeypatch.setattr(kubernetes_jobs, "stop_all", lambda informers: handed.append(informers))
    for emulator in serve():
        kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig")
        api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        watch = JobWatch(api, ["a", "b", "c"])
        loop = asyncio.new_event_loop()
        try:
            assert watch.start(loop, 10)
        finally:
            watch.stop()
            stop_all(handed[0] if handed else [])
            api.close()
            loop.close()
    assert [len(informers) for informers in handed] == [3]
