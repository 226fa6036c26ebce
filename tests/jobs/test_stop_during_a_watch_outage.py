"""A stop (``Replace``, a run asked for now under ``Replace``) of an attempt whose Job ended
while the watch could not tell (it was down, or behind): the stop reads the Job afresh before
it deletes it, within the reads' bound (``job_end.STOP_READS_WAIT``). A Job that ended keeps
its own outcome (a succeeded Job is not recorded ``failed``, ``Replaced``) and is not deleted;
one still running is deleted as before; a read that fails or is not answered is as before too
(the Job deleted, the stop no longer)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.runs import RunStatus, run_id
from reconciler.runner import job_end
from reconciler.runner.job import JobRunner
from reconciler.sources import job_calls
from reconciler.store import MemoryRunStore
from tests.jobs.conftest import Gate, condition, jobs
from tests.jobs.test_job_runner import KEY, NAME, T0, job_task, play, record, until
from tests.jobs.test_stop_reads_unanswered import READ_TIMEOUT, gets, wired
from tests.jobs.twin import FakeCluster
from tests.k8s.emulator import Emulator


@pytest.mark.parametrize(
    ("kind", "status", "exit_code"),
    [("Complete", RunStatus.SUCCEEDED, 0), ("Failed", RunStatus.FAILED, 1)],
)
def test_a_job_that_ended_unseen_by_the_watch_keeps_its_own_outcome(
    kind: str, status: RunStatus, exit_code: int
) -> None:
    async def body(cluster: FakeCluster, runner: JobRunner) -> None:
        attempt = runner.attempt(job_task(), record())
        running = asyncio.ensure_future(attempt.run())
        await until(lambda: NAME in cluster.jobs)
        await asyncio.sleep(0.01)  # the attempt follows the Job, waiting for a change
        cluster.watch_delivers = False  # the watch is down: its end is not seen
        cluster.finish(NAME, kind, exit_code=exit_code, log="all done\n")
        attempt.stop("Replaced")
        outcome = await running
        assert (outcome.status, outcome.exit_code) == (status, exit_code), outcome.message
        assert outcome.reason != "Replaced"
        assert outcome.output == "all done\n"
        assert NAME in cluster.jobs  # over already: left to the history limits
        assert ("delete", NAME) not in [(c[0], c[1]) for c in cluster.calls]

    play(body)


def test_a_job_still_running_is_deleted_after_the_read() -> None:
    async def body(cluster: FakeCluster, runner: JobRunner) -> None:
        attempt = runner.attempt(job_task(), record())
        running = asyncio.ensure_future(attempt.run())
        await until(lambda: NAME in cluster.jobs)
        await asyncio.sleep(0.01)
        cluster.watch_delivers = False
        attempt.stop("Replaced")
        outcome = await running
        assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "Replaced")
        assert NAME not in cluster.jobs
        calls = [(c[0], c[1]) for c in cluster.calls]
        assert calls.index(("get", NAME)) < calls.index(("delete", NAME))

    play(body)


def test_a_read_that_fails_leaves_the_stop_as_it_was() -> None:
    async def body(cluster: FakeCluster, runner: JobRunner) -> None:
        attempt = runner.attempt(job_task(), record())
        running = asyncio.ensure_future(attempt.run())
        await until(lambda: NAME in cluster.jobs)
        await asyncio.sleep(0.01)
        cluster.watch_delivers = False
        cluster.finish(NAME, "Complete")
        cluster.get_errors = 2  # sent once more only if it failed at once
        attempt.stop("Replaced")
        outcome = await running
        assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "Replaced")
        assert ("delete", NAME) in [(c[0], c[1]) for c in cluster.calls]

    play(body)


class Unanswered(FakeCluster):
    """An API server that takes the read of the Job and never answers it."""

    async def get(self, namespace: str, name: str) -> Any:
        self.calls.append(("get", name))
        await asyncio.Event().wait()


def test_an_unanswered_read_is_given_up_within_the_stops_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wait = 0.3
    monkeypatch.setattr(job_end, "STOP_READS_WAIT", wait)

    async def main() -> None:
        cluster = Unanswered()
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.05)
        attempt = runner.attempt(job_task(), record())
        running = asyncio.ensure_future(attempt.run())
        await until(lambda: NAME in cluster.jobs)
        await asyncio.sleep(0.01)
        cluster.watch_delivers = False
        loop = asyncio.get_running_loop()
        began = loop.time()
        attempt.stop("Replaced")
        outcome = await running
        took = loop.time() - began
        assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "Replaced")
        assert NAME not in cluster.jobs
        assert outcome.job is not None
        assert outcome.job.log_error == f"the Job's pods and log were not read within {wait:g}s"
        assert wait <= took < wait + 1.0, took

    asyncio.run(main())


JOB_LISTS = r"^/apis/batch/v1/namespaces/default/jobs\?"  # the watch's lists and watches


@pytest.mark.slow
def test_a_replace_during_a_watch_outage_keeps_the_outcome_of_a_job_that_succeeded(
    emulator: Emulator, k8s_api_client: Any, tmp_path: Path
) -> None:
    """The real JobWatch, runner and dispatcher against the emulator: the Jobs watch cut and
    not let back, the Job succeeds, the next slot replaces its run."""
    gate = Gate(tmp_path)
    store = MemoryRunStore()
    script = {"name": "main", "image": "busybox", "command": ["sh", "-c", gate.wait("echo ok")]}
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
            await until(lambda: (r := store.get(first)) is not None and r.job and r.job.uid, 10)
            emulator.hold("GET", JOB_LISTS)
            emulator.cut_watches()
            gate.open()
            await until(lambda: [condition(j) for j in jobs(emulator)] == ["Complete"], 10)
            now[0] = slot
            d.fire(task, slot)
            await until(lambda: (r := store.get(first)) is not None and r.status.finished, 30)
            done = store.get(first)
            assert done is not None
            assert (done.status, done.reason, done.output) == (RunStatus.SUCCEEDED, None, "ok\n")
            assert [condition(j) for j in jobs(emulator)] == ["Complete"]  # not deleted
            # The replacing run waits for no delete: its Job is made beside the ended one.
            await until(lambda: len(jobs(emulator)) == 2, 10)
            await d.shutdown(0)
        finally:
            emulator.release()
            watch.stop()

    asyncio.run(main())


JOB_READ = r"^/apis/batch/v1/namespaces/default/jobs/[^/?]+(\?|$)"  # one Job's GET


@pytest.mark.slow
def test_a_stops_read_of_the_job_is_sent_once_and_given_up_at_its_read_timeout(
    emulator: Emulator, k8s_api_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API server takes the read of the Job and never answers: one GET (not one more for
    each of urllib3's retries), given up after its read timeout; the Job is deleted as before."""
    short = (5.0, READ_TIMEOUT)
    monkeypatch.setattr(job_calls, "_TIMEOUT", short)  # the normal client's reads
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
        watch, _, d = await wired(k8s_api_client, store, lambda: now[0])
        try:
            d.fire(task, T0)
            first = run_id(KEY, T0)
            await until(lambda: (r := store.get(first)) is not None and r.job and r.job.uid, 10)
            before = gets(emulator, JOB_READ)
            emulator.hold("GET", JOB_READ)
            now[0] = slot
            loop = asyncio.get_running_loop()
            decided = loop.time()
            d.fire(task, slot)
            await until(lambda: (r := store.get(first)) is not None and r.status.finished, 30)
            took = loop.time() - decided
            replaced = store.get(first)
            assert replaced is not None
            assert (replaced.status, replaced.reason) == (RunStatus.FAILED, "Replaced")
            assert "deleted" in (replaced.message or ""), replaced.message
            assert gets(emulator, JOB_READ) - before == 1
            # Given up at its read timeout, not at the stop reads' 20 s bound (a loaded
            # machine's scheduling is not what is measured: the bound is far above the timeout).
            assert READ_TIMEOUT <= took < 10, took
            await d.shutdown(0)
        finally:
            emulator.release()
            watch.stop()

    asyncio.run(main())
