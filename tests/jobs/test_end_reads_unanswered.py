"""The reads at the end of a Job that ended by itself (its pods, its log tail) from an API server
that takes them and never answers. They went through the client every other call uses:
urllib3's ``Retry(3)`` sent each GET again at each read timeout (60 s), up to 4 minutes a read,
while the run held its slot (``Forbid`` skips the slots meanwhile). Now they are read as a stop's
are (``JobRunner.stop_reads``): each sent once (``sources.kubernetes.one_shot``), given up after
``STOP_READ_TIMEOUT``, all of them after ``job_end.STOP_READS_WAIT``; the run ends all the same,
its record saying why its log is missing.

As tests/jobs/test_stop_reads_unanswered.py: the real :class:`JobWatch`, runner and dispatcher
as ``controller.jobs.job_support`` wires them, over HTTP, against the project's Kubernetes
emulator, which holds the GETs unanswered (``Emulator.hold``); the read timeouts are shortened
(seconds, not minutes), the normal client's too, so that the retries it would make show."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reconciler.core.runs import RunStatus, run_id
from reconciler.runner import job_end
from reconciler.runner.job import JobRunner
from reconciler.sources import job_calls, pod_logs
from reconciler.store import MemoryRunStore
from tests.jobs.test_job_runner import KEY, NAME, T0, job_task, record, until
from tests.jobs.test_stop_reads_unanswered import LOG, PODS, READ_TIMEOUT, Unanswered, gets, wired
from tests.jobs.twin import FakeCluster
from tests.k8s.emulator import Emulator


@pytest.mark.parametrize("held", [PODS, LOG], ids=["pods-list", "log-tail"])
def test_a_jobs_own_end_reads_once_and_frees_its_forbid_slot(
    emulator: Emulator, k8s_api_client: Any, monkeypatch: pytest.MonkeyPatch, held: str
) -> None:
    """A Job that succeeds by itself, its pods listed or its log tail read with no answer: one
    GET, given up after the read timeout; the run is recorded succeeded, its record saying why
    its log is missing, and the next slot of its ``Forbid`` task runs."""
    short = (5.0, READ_TIMEOUT)
    monkeypatch.setattr(job_calls, "_TIMEOUT", short)  # the normal client's reads
    monkeypatch.setattr(pod_logs, "TIMEOUT", short)
    monkeypatch.setattr(job_calls, "STOP_READ_TIMEOUT", short)
    store = MemoryRunStore()
    script = {"name": "main", "image": "busybox", "command": ["sh", "-c", "echo done"]}
    task = job_task(
        concurrencyPolicy="Forbid",
        job={"spec": {"backoffLimit": 0, "template": {"spec": {"containers": [script]}}}},
    )

    async def main() -> None:
        now = [T0]
        watch, runner, d = await wired(k8s_api_client, store, lambda: now[0])
        try:
            # Without timeoutSeconds nothing looks at the pods while the Job runs: the GETs held
            # are the end's alone.
            emulator.hold("GET", held)
            d.fire(task, T0)
            first = run_id(KEY, T0)
            await until(lambda: (r := store.get(first)) is not None and r.status.finished, 30)
            sent = gets(emulator, held)
            print(f"held {held}: {sent} GET(s)")
            ended = store.get(first)
            assert ended is not None
            assert ended.status is RunStatus.SUCCEEDED, ended
            assert ended.job is not None
            assert "ead timed out" in (ended.job.log_error or ""), ended.job
            # One GET, not one more for each of urllib3's 3 retries (4 read timeouts).
            assert sent == 1, sent
            # Its record is written before the dispatcher lets the run go: the slot then.
            await until(lambda: d.active_count() == 0 and not runner.running(KEY), 10)
            now[0] = slot = T0.replace(minute=1)
            second = d.fire(task, slot)
            assert (second.id, second.status) == (run_id(KEY, slot), RunStatus.RUNNING), second
            await until(lambda: (r := store.get(second.id)) is not None and r.status.finished, 30)
            await d.shutdown(0)
        finally:
            emulator.release()
            watch.stop()

    asyncio.run(main())


def test_a_jobs_own_end_gives_its_reads_up_together_and_ends_all_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """However each read is bounded, all of the reads at a Job's own end end at
    ``STOP_READS_WAIT``: the run then ends with the Job's outcome, and its record says why its
    log is missing."""
    wait = 0.3
    monkeypatch.setattr(job_end, "STOP_READS_WAIT", wait)

    async def main() -> None:
        cluster, reads = FakeCluster(), Unanswered()
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.05, stop_reads=reads)
        running = asyncio.ensure_future(runner.attempt(job_task(), record()).run())
        await until(lambda: NAME in cluster.jobs)
        cluster.finish(NAME, exit_code=0, log="all good\n")
        outcome = await asyncio.wait_for(running, 10)
        assert outcome.status is RunStatus.SUCCEEDED
        assert outcome.output == ""  # not read
        assert outcome.job is not None
        assert outcome.job.log_error == f"the Job's pods and log were not read within {wait:g}s"
        assert reads.calls == 1

    asyncio.run(main())
