"""A create the API server wrote but did not answer (a client read timeout after the write)
may have made the attempt's Job: nothing is concluded before the name is read, and that read
is asked again until the API server answers. Failing the attempt on one failed read had its
retry create ``<name>-2`` while the first Job ran: two Jobs of one slot, and a record that
says failed for work that succeeded. Only a create refused outright (a 4xx other than 409 and
429) fails the attempt at once (``JobCreateFailed``, retried as the task says)."""

from __future__ import annotations

import asyncio
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
from reconciler.runner.job_create import UNANSWERED_READ_EVERY
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


def test_after_an_outage_the_name_is_read_again_soon(monkeypatch: pytest.MonkeyPatch) -> None:
    """An API outage: each create and the reads of the name that follow get a 503. The read
    is asked again at most ``UNANSWERED_READ_EVERY`` apart, not after a pause grown to
    ``verify_seconds`` (30 s after the API server was back, the run held its slot and
    ``Forbid`` skipped the slots that came); the attempt then fails saying what happened."""
    unavailable = ApiError("cannot create Job: HTTP 503 Service Unavailable", 503)

    async def main() -> None:
        cluster = FakeCluster()
        cluster.create_errors = [unavailable] * 3
        cluster.get_errors = 8
        runner = JobRunner(cluster, namespace="default", verify_seconds=30.0, create_attempts=3)
        attempt = runner.attempt(job_task(), record())
        pauses: list[float] = []

        async def pause(seconds: float) -> bool:  # no time passes: the pauses are the point
            pauses.append(seconds)
            return False

        monkeypatch.setattr(attempt, "pause", pause)
        outcome = await attempt.run()
        assert cluster.calls.count(("get", NAME)) == 9  # asked until it answered
        assert len(pauses) == 2 + 8  # between the creates, then between the reads
        assert max(pauses) <= UNANSWERED_READ_EVERY
        assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "JobCreateFailed")
        assert outcome.message == (
            f"Job {NAME}: its create went unanswered, and no Job of that name was there when "
            f"the API server answered (the last create: {unavailable})"
        )

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

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        if self.gets_to_fail:
            self.gets_to_fail -= 1
            raise JobApiError("cannot read Job: HTTP 503 Service Unavailable", 503)
        return await super().get(namespace, name)


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
