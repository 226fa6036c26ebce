"""The reads of a stopped run (its pods, its log tail) from an API server that takes them and
never answers. They went through the client every other call uses: urllib3's ``Retry(3)``
sent each GET again on each read timeout (60 s), up to 4 minutes a read, while the stop of a
``Replace``d run held its slot. Now they are sent once (``sources.kubernetes.one_shot``), each
given up after ``STOP_READ_TIMEOUT``, all of them after ``job_end.STOP_READS_WAIT``.

The real :class:`JobWatch`, runner and dispatcher as ``controller.jobs.job_support`` wires
them, over HTTP, against the project's Kubernetes emulator, which holds the GETs unanswered
(``Emulator.hold``); the read timeouts are shortened here (seconds, not minutes), the normal
client's too, so that the retries it would make show in seconds."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.job_options import JobOptions
from reconciler.controller.jobs import job_support
from reconciler.core.runs import RunStatus, run_id
from reconciler.runner import job_end
from reconciler.runner.base import Actions
from reconciler.runner.job import JobRunner
from reconciler.sources import job_calls, pod_logs
from reconciler.sources.kubernetes import Connection
from reconciler.sources.kubernetes_jobs import JobWatch
from reconciler.store import MemoryRunStore
from tests.jobs.test_job_runner import KEY, NAME, T0, job_task, record, until
from tests.jobs.twin import FakeCluster
from tests.k8s.emulator import Emulator

READ_TIMEOUT = 0.5  # each read's here (STOP_READ_TIMEOUT: 15 s in use)
PODS = r"^/api/v1/namespaces/default/pods(\?|$)"
LOG = r"^/api/v1/namespaces/default/pods/[^/?]+/log"


def gets(emulator: Emulator, pattern: str) -> int:
    return sum(1 for verb, path in emulator.requests if verb == "GET" and re.match(pattern, path))


async def wired(
    api_client: Any, store: MemoryRunStore, clock: Callable[[], datetime]
) -> tuple[JobWatch, JobRunner, Dispatcher]:
    """The real JobWatch (started), runner and dispatcher, as ``controller.jobs.job_support``
    wires them, on ``api_client`` (the emulator's); the caller stops the watch."""
    support = job_support(
        Connection(api_client, "default", "default"),
        JobOptions(namespace="default"),
        all_namespaces=False,
        owner=lambda key: None,
        resync_seconds=300.0,
    )
    watch, runner = support.watch, support.runner
    runner.verify_seconds = 0.05
    assert await asyncio.to_thread(watch.start, asyncio.get_running_loop(), 10)
    d = Dispatcher(store, owner="h:1:x", clock=clock, actions=Actions([runner]))
    d.resumable = runner
    runner.progress = d.progress
    return watch, runner, d


@pytest.mark.parametrize("held", [PODS, LOG], ids=["pods-list", "log-tail"])
def test_a_replaced_runs_reads_are_sent_once_and_given_up_at_their_read_timeout(
    emulator: Emulator, k8s_api_client: Any, monkeypatch: pytest.MonkeyPatch, held: str
) -> None:
    """Its pods listed, or its log tail read, with no answer: one GET, given up after the read
    timeout; the Job is then deleted, and the run that replaces it starts."""
    short = (5.0, READ_TIMEOUT)
    monkeypatch.setattr(job_calls, "_TIMEOUT", short)  # the normal client's reads
    monkeypatch.setattr(pod_logs, "TIMEOUT", short)
    monkeypatch.setattr(job_calls, "STOP_READ_TIMEOUT", short)
    store = MemoryRunStore()
    script = {"name": "main", "image": "busybox", "command": ["sh", "-c", "sleep 30"]}
    task = job_task(
        concurrencyPolicy="Replace",
        job={"spec": {"backoffLimit": 0, "template": {"spec": {"containers": [script]}}}},
    )
    slot = T0.replace(minute=1)

    async def main() -> None:
        now = [T0]
        watch, runner, d = await wired(k8s_api_client, store, lambda: now[0])
        try:
            d.fire(task, T0)
            first = run_id(KEY, T0)
            await until(lambda: [r.id for r in runner.running(KEY)] == [first], 10)
            # Its pod has started: the log tail has something to read.
            await until(
                lambda: any(
                    p["status"].get("phase") == "Running" for p in emulator.objects("pods")
                ),
                10,
            )
            before = gets(emulator, held)
            emulator.hold("GET", held)
            now[0] = slot
            loop = asyncio.get_running_loop()
            decided = loop.time()
            d.fire(task, slot)
            await until(lambda: (r := store.get(first)) is not None and r.status.finished, 30)
            took = loop.time() - decided
            sent = gets(emulator, held) - before
            print(f"held {held}: {sent} GET(s), the stop took {took:.2f}s")
            replaced = store.get(first)
            assert replaced is not None
            assert (replaced.status, replaced.reason) == (RunStatus.FAILED, "Replaced")
            assert replaced.job is not None
            assert "ead timed out" in (replaced.job.log_error or ""), replaced.job
            assert "Job job-" in (replaced.message or "")
            assert "deleted" in (replaced.message or "")
            # One GET, not one more for each of urllib3's 3 retries (4 read timeouts).
            assert sent == 1, sent
            assert READ_TIMEOUT <= took < 3 * READ_TIMEOUT, took
            second = run_id(KEY, slot)
            await until(lambda: [r.id for r in runner.running(KEY)] == [second], 10)
            await d.shutdown(0)
        finally:
            emulator.release()
            watch.stop()

    asyncio.run(main())


class Unanswered:
    """Reads that never end: a log that trickles in, reads that each answer just in time."""

    def __init__(self) -> None:
        self.calls = 0

    async def pods(self, namespace: str, uid: str, *, cached: bool = False) -> list[Any]:
        self.calls += 1
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def log_tail(self, namespace: str, pod: str, container: str, limit: int) -> str:
        raise AssertionError("not read: the pods were not listed")

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return None  # a stop's read of the Job: not found, so it goes by the watch's


def test_a_stops_reads_are_given_up_together_and_the_job_deleted_all_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """However each read is bounded, all of a stop's reads end at ``STOP_READS_WAIT``: the
    stop then deletes the Job, and its record says why its log is missing."""
    wait = 0.3
    monkeypatch.setattr(job_end, "STOP_READS_WAIT", wait)

    async def main() -> None:
        cluster, reads = FakeCluster(), Unanswered()
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.05, stop_reads=reads)
        attempt = runner.attempt(job_task(), record())
        running = asyncio.ensure_future(attempt.run())
        await until(lambda: NAME in cluster.jobs)
        loop = asyncio.get_running_loop()
        began = loop.time()
        attempt.stop("Replaced")
        outcome = await running
        took = loop.time() - began
        assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "Replaced")
        assert NAME not in cluster.jobs  # deleted after the reads were given up
        assert ("delete", NAME) in cluster.calls
        assert outcome.job is not None
        assert outcome.job.log_error == f"the Job's pods and log were not read within {wait:g}s"
        assert reads.calls == 1
        assert wait <= took < wait + 1.0, took

    asyncio.run(main())
