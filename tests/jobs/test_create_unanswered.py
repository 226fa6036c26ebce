"""A create the API server wrote but did not answer (a client read timeout after the write)
may have made the attempt's Job: nothing is concluded before the name is read, and that read
is asked again until the API server answers. Failing the attempt on one failed read had its
retry create ``<name>-2`` while the first Job ran: two Jobs of one slot, and a record that
says failed for work that succeeded. Only a create refused outright (a 4xx other than 409 and
429) fails the attempt at once (``JobCreateFailed``, retried as the task says)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config

from reconciler.controller.dispatch import Dispatcher
from reconciler.core.runs import RunStatus
from reconciler.runner.base import Actions
from reconciler.runner.job import JobCluster, JobRunner
from reconciler.runner.job_create import ANSWERED_SPREAD
from reconciler.sources.kubernetes_jobs import JobApiError, JobWatch
from reconciler.store import MemoryRunStore
from tests.jobs.test_job_runner import KEY, NAME, T0, job_task, record, until
from tests.jobs.twin import ApiError, FakeCluster
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import serve

RETRIED = {"limit": 1, "backoffSeconds": 0}


class WrittenUnanswered(FakeCluster):
    """The first create is written and its answer lost; the creates after it get what
    ``then`` says (503s by default), and the first ``get_errors`` reads fail."""

    def __init__(self, then: list[ApiError] | None = None) -> None:
        super().__init__()
        self.then = then if then is not None else [ApiError("HTTP 503", 503)] * 5
        self.creates = 0

    async def create(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        self.creates += 1
        if self.creates == 1:
            self.calls.append(("create", body["metadata"]["name"]))
            self.add(body)  # written...
            raise ApiError("cannot create Job: ReadTimeoutError: read timed out")  # ...unheard
        self.create_errors = self.then[:1]
        self.then = self.then[1:]
        return await super().create(body)


def dispatcher(cluster: JobCluster, store: MemoryRunStore) -> Dispatcher:
    runner = JobRunner(cluster, namespace="default", verify_seconds=0.05, create_attempts=2)
    d = Dispatcher(store, owner="h:1:x", clock=lambda: T0, actions=Actions([runner]))
    d.resumable = runner
    runner.progress = d.progress
    return d


def test_a_written_create_then_a_failed_read_is_followed_not_made_twice() -> None:
    store = MemoryRunStore()

    async def main() -> None:
        cluster = WrittenUnanswered()
        cluster.get_errors = 1  # the read after the creates fails once (503, a reset...)
        d = dispatcher(cluster, store)
        fired = d.fire(job_task(retry=RETRIED), T0)
        await until(lambda: cluster.calls.count(("get", NAME)) >= 2)  # asked again
        cluster.finish(NAME, log="ran once\n")
        await until(lambda: not d.active(KEY))
        attempts = [(r.attempt, r.status, r.reason) for r in store.attempts(fired.id)]
        assert attempts == [(1, RunStatus.SUCCEEDED, None)]
        assert store.attempts(fired.id)[0].output == "ran once\n"
        assert list(cluster.jobs) == [NAME]  # no <name>-2 beside it
        await d.shutdown(0)

    asyncio.run(main())


def test_a_create_refused_after_one_went_unanswered_still_reads_the_name() -> None:
    """The 403 says nothing of the create before it, which may have been written."""

    async def main() -> None:
        cluster = WrittenUnanswered([ApiError("HTTP 403 Forbidden: quota", 403)])
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.05, create_attempts=3)
        running = asyncio.ensure_future(runner.attempt(job_task(), record()).run())
        await until(lambda: ("get", NAME) in cluster.calls)
        cluster.finish(NAME)
        outcome = await asyncio.wait_for(running, 5)
        assert outcome.status is RunStatus.SUCCEEDED
        assert [c for c in cluster.calls if c[0] == "create"] == [("create", NAME)] * 2

    asyncio.run(main())


def test_a_name_read_empty_after_unanswered_creates_fails_the_attempt_for_a_retry() -> None:
    """Nothing was written: the attempt fails (``JobCreateFailed``) and its retry runs."""
    store = MemoryRunStore()

    async def main() -> None:
        cluster = FakeCluster()
        cluster.create_errors = [ApiError("HTTP 503", 503)] * 2
        cluster.get_errors = 1
        d = dispatcher(cluster, store)
        fired = d.fire(job_task(retry=RETRIED), T0)
        await until(lambda: f"{NAME}-2" in cluster.jobs)
        cluster.finish(f"{NAME}-2")
        await until(lambda: not d.active(KEY))
        attempts = [(r.attempt, r.status, r.reason) for r in store.attempts(fired.id)]
        assert attempts == [
            (1, RunStatus.FAILED, "JobCreateFailed"),
            (2, RunStatus.SUCCEEDED, None),
        ]
        assert cluster.calls.count(("get", NAME)) == 2  # asked until it answered
        await d.shutdown(0)

    asyncio.run(main())


def test_during_an_outage_the_reads_of_the_name_grow_apart_and_are_said_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An API outage: each create and the reads of the name that follow go unanswered. The
    reads are asked a pause apart that grows to ``verify_seconds``, each a random part of it
    (the runs an outage caught together do not ask together), each pause woken by the API
    server's next answer; the failure is logged once, not at every read. (Reading every 2 s,
    1 000 runs asked a recovering API server 500 times a second.)"""
    unavailable = ApiError("cannot create Job: HTTP 503 Service Unavailable", 503)

    async def main() -> None:
        cluster = FakeCluster()
        cluster.create_errors = [unavailable] * 3
        cluster.get_errors = 12
        runner = JobRunner(cluster, namespace="default", verify_seconds=30.0, create_attempts=3)
        attempt = runner.attempt(job_task(), record())
        pauses: list[tuple[float, bool]] = []

        async def pause(
            seconds: float, wake: asyncio.Future[None] | None = None, spread: float = 0.0
        ) -> bool:  # no time passes, and nothing answers: the pauses are the point
            pauses.append((seconds, wake is not None))
            if wake is not None:
                wake.cancel()
            return False

        monkeypatch.setattr(attempt, "pause", pause)
        outcome = await attempt.run()
        assert cluster.calls.count(("get", NAME)) == 13  # asked until it answered
        reads = pauses[2:]  # after the pauses between the creates
        assert len(reads) == 12
        assert all(woken for _, woken in reads)
        grown = [min(0.5 * 2**k, 30.0) for k in range(12)]
        assert all(
            top / 2 <= seconds <= top for (seconds, _), top in zip(reads, grown, strict=True)
        )
        assert len({seconds for seconds, _ in reads}) == 12  # spread, not in lockstep
        assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "JobCreateFailed")
        assert outcome.message == (
            f"Job {NAME}: its create went unanswered, and no Job of that name was there when "
            f"the API server answered (the last create: {unavailable})"
        )

    with caplog.at_level(logging.WARNING, logger="crontask.runner"):
        asyncio.run(main())
    said = [r for r in caplog.records if r.getMessage().startswith("cannot read a Job")]
    assert len(said) == 1


def test_one_answer_wakes_the_reads_of_an_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three runs whose creates and reads went unanswered wait, each in a pause grown long;
    the API server is back, and one request it answers (any, through the cluster) wakes
    them: each reads its name once more, at once, and ends."""
    unavailable = ApiError("cannot create Job: HTTP 503 Service Unavailable", 503)

    async def main() -> None:
        cluster = FakeCluster()
        cluster.create_errors = [unavailable] * 3
        cluster.get_errors = 1000
        runner = JobRunner(cluster, namespace="default", verify_seconds=30.0, create_attempts=1)
        waiting: list[float] = []

        async def pause(
            seconds: float, wake: asyncio.Future[None] | None = None, spread: float = 0.0
        ) -> bool:  # a short pause passes at once; a long one lasts until woken
            if wake is None or seconds < 4:
                return False
            waiting.append(seconds)
            await wake
            return False

        attempts = [runner.attempt(job_task(), record(attempt=n)) for n in (1, 2, 3)]
        for attempt in attempts:
            monkeypatch.setattr(attempt, "pause", pause)
        runs = [asyncio.ensure_future(attempt.run()) for attempt in attempts]
        await until(lambda: len(waiting) == 3)
        reads = {a.where.name: cluster.calls.count(("get", a.where.name)) for a in attempts}
        cluster.get_errors = 0
        assert await cluster.get("default", "another") is None  # answered: the API is back
        outcomes = await asyncio.wait_for(asyncio.gather(*runs), 5)
        assert {o.reason for o in outcomes} == {"JobCreateFailed"}
        after = {a.where.name: cluster.calls.count(("get", a.where.name)) for a in attempts}
        assert after == {name: count + 1 for name, count in reads.items()}
        assert len(waiting) == 3  # each woken from its first long pause

    asyncio.run(main())


class ReadRefused(WrittenUnanswered):
    """crontask may not read Jobs (its Role lacks ``get`` on ``jobs``): every read is 403."""

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get", name))
        raise ApiError("cannot read Job: HTTP 403 Forbidden", 403)


def test_a_woken_read_that_fails_waits_its_whole_next_pause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Woken by an answer to another request, the read failed all the same (an API server
    that answers some requests): the next pause is not woken, the one after it is again. The
    spread of a woken read is drawn for each pause (``random.uniform``) and passed on."""
    drawn = {(0.0, ANSWERED_SPREAD): 0.25, (0.5, 1.0): 0.75}
    monkeypatch.setattr(random, "uniform", lambda a, b: drawn[(a, b)])

    async def main() -> None:
        cluster = FakeCluster()
        cluster.create_errors = [ApiError("HTTP 503", 503)]
        cluster.get_errors = 3
        runner = JobRunner(cluster, namespace="default", verify_seconds=30.0, create_attempts=1)
        attempt = runner.attempt(job_task(), record())
        pauses: list[tuple[float, bool, float]] = []

        async def pause(
            seconds: float, wake: asyncio.Future[None] | None = None, spread: float = 0.0
        ) -> bool:  # each wake is answered at once: the API server answers something
            pauses.append((seconds, wake is not None, spread))
            if wake is not None and not wake.done():
                wake.set_result(None)
            return False

        monkeypatch.setattr(attempt, "pause", pause)
        outcome = await attempt.run()
        assert outcome.reason == "JobCreateFailed"
        assert pauses == [(0.375, True, 0.25), (0.75, False, 0.25), (1.5, True, 0.25)]

    asyncio.run(main())


def test_a_pause_woken_ends_after_its_spread_and_a_stop_ends_it() -> None:
    async def main() -> None:
        runner = JobRunner(FakeCluster(), namespace="default")
        attempt = runner.attempt(job_task(), record())
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        paused = asyncio.ensure_future(attempt.pause(3600, wake, spread=0.0))
        await asyncio.sleep(0)
        assert not paused.done()
        wake.set_result(None)
        assert await asyncio.wait_for(paused, 5) is False  # woken: not stopped
        wake = asyncio.get_running_loop().create_future()
        paused = asyncio.ensure_future(attempt.pause(3600, wake, spread=3600))
        wake.set_result(None)
        await asyncio.sleep(0)
        attempt.stop("Replaced")  # within the spread: a stop ends it too
        assert await asyncio.wait_for(paused, 5) is True

    asyncio.run(main())


def test_an_answer_is_a_result_or_a_status_other_than_429_or_5xx() -> None:
    async def main() -> None:
        cluster = FakeCluster()

        async def fails(status: int | None) -> None:
            raise ApiError("no", status)

        for status, answered in [(404, True), (403, True), (503, False), (429, False)]:
            waiter = cluster.when_answered()
            with pytest.raises(ApiError):
                await cluster.heard_from(fails(status))
            assert waiter.done() is answered, status
            waiter.cancel()
        waiter = cluster.when_answered()
        with pytest.raises(ApiError):
            await cluster.heard_from(fails(None))  # no answer at all
        assert not waiter.done()
        await cluster.heard_from(asyncio.sleep(0))
        assert waiter.done()

    asyncio.run(main())


# -- the real JobWatch, over HTTP, against the emulator ------------------------------------------


class FlakyWatch(JobWatch):
    """An API server under load: the first create is written but its answer lost; the next
    one is refused 503, and so is the read that follows it."""

    creates = 0
    gets_to_fail = 0

    async def create(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        self.creates += 1
        if self.creates == 1:
            await super().create(body)
            raise JobApiError("cannot create Job: ReadTimeoutError: read timed out")
        if self.creates == 2:
            self.gets_to_fail = 1
            raise JobApiError("cannot create Job: HTTP 503 Service Unavailable", 503)
        return await super().create(body)

    async def get(self, namespace: str, name: str, *, once: bool = False) -> dict[str, Any] | None:
        if self.gets_to_fail:
            self.gets_to_fail -= 1
            raise JobApiError("cannot read Job: HTTP 503 Service Unavailable", 503)
        return await super().get(namespace, name, once=once)


@pytest.fixture
def running_emulator() -> Iterator[Emulator]:
    yield from serve(run_jobs=True, pod_backoff=0.05, max_grace_period=0.5)


def test_one_job_of_the_slot_with_the_real_watch(
    running_emulator: Emulator, tmp_path: Path
) -> None:
    kubeconfig = running_emulator.write_kubeconfig(tmp_path / "kubeconfig")
    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    store = MemoryRunStore()
    task = job_task(
        retry=RETRIED,
        job={
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "main", "image": "busybox", "command": ["echo", "done"]}
                        ]
                    }
                },
            }
        },
    )

    async def main() -> None:
        watch = FlakyWatch(api, ["default"])
        assert await asyncio.to_thread(watch.start, asyncio.get_running_loop(), 10)
        try:
            d = dispatcher(watch, store)
            fired = d.fire(task, datetime.now(UTC).replace(microsecond=0))
            await until(lambda: not d.active(KEY), timeout=20)
            attempts = store.attempts(fired.id)
            assert [(r.attempt, r.status) for r in attempts] == [(1, RunStatus.SUCCEEDED)]
            assert attempts[0].output == "done\n"
            assert len(running_emulator.objects("jobs")) == 1
            await d.shutdown(0)
        finally:
            watch.stop()

    try:
        asyncio.run(main())
    finally:
        api.close()
