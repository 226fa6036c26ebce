"""``Replace`` waits for the Job it replaces to be gone, also when its delete was answered but a
finalizer (another controller's) holds it: the Job is Terminating, and its pods run on (the
garbage collector deletes a Background delete's pods only once the Job is gone). Before, the
new Job was created as soon as the delete was answered, beside the old one and its pods. With
the in-memory cluster (``tests.jobs.twin.FakeCluster``)."""

from __future__ import annotations

import asyncio
import copy

import pytest

from reconciler.controller import replace_wait
from reconciler.core.runs import RunStatus, run_id
from reconciler.store import MemoryRunStore
from tests.jobs.test_job_runner import KEY, NAME, T0, job_task, until, wired
from tests.jobs.twin import FakeCluster
from tests.runner.test_replace_waits_for_delete import T1, T2, ended, stored

HOLD = "example.com/hold"


class Finalized(FakeCluster):
    """A Job carries the finalizer ``HOLD``: its delete is answered, and the Job stays,
    Terminating (``deletionTimestamp``), until the test lets it go. Records a Job created while
    another still is there, and how often the cache was read for a Job being deleted."""

    def __init__(self) -> None:
        super().__init__()
        self.side_by_side: list[str] = []
        self.looks = 0

    def cached(self, namespace: str, name: str) -> dict[str, object] | None:
        job = super().cached(namespace, name)
        self.looks += job is not None and "deletionTimestamp" in job["metadata"]
        return job

    async def delete(self, namespace: str, name: str, uid: str | None) -> bool:
        self.calls.append(("delete", name))
        job = self.jobs.get(name)
        if job is None or (uid and job["metadata"]["uid"] != uid):
            return False
        job = copy.deepcopy(job)
        job["metadata"].update(deletionTimestamp="2026-11-30T12:01:00Z", finalizers=[HOLD])
        self._store(job)
        return True

    async def create(self, body: dict[str, object]) -> tuple[dict[str, object], bool]:
        name = body["metadata"]["name"]  # type: ignore[index]
        self.side_by_side += [other for other in self.jobs if other != name]
        return await super().create(body)

    def let_go(self, name: str) -> None:
        """The other controller removes its finalizer: the Job goes."""
        self.vanish(name)


def test_the_new_job_waits_until_a_job_held_by_a_finalizer_is_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(replace_wait, "LOOK_EVERY", 0.01)  # woken by the watch all the same
    store, cluster = MemoryRunStore(), Finalized()
    now = [T0]
    task = job_task(concurrencyPolicy="Replace")

    async def main() -> None:
        d, runner = wired(cluster, store, lambda: now[0])
        d.fire(task, T0)
        await until(lambda: NAME in cluster.jobs)
        now[0] = T1
        d.fire(task, T1)
        await until(lambda: ended(store, T0))
        replaced = stored(store, T0)
        assert replaced is not None
        assert (replaced.status, replaced.reason) == (RunStatus.FAILED, "Replaced")
        assert replaced.message == (
            f"stopped: Replaced; Job {NAME} delete requested, still there (finalizers: {HOLD})"
        )
        # The delete was answered; the Job is still there, Terminating: the new run waits.
        await until(lambda: cluster.calls.count(("delete", NAME)) == 1)
        # Its looks at the Job (every LOOK_EVERY) find it still there; before, the new Job
        # was created as the delete was answered.
        await until(lambda: cluster.side_by_side or cluster.looks >= 3)
        assert cluster.side_by_side == []
        assert list(cluster.jobs) == [NAME]
        assert [r.id for r in d.active(KEY)] == [run_id(KEY, T1)]
        assert not ended(store, T1)
        cluster.let_go(NAME)
        await until(lambda: [r.id for r in runner.running(KEY)] == [run_id(KEY, T1)])
        assert cluster.side_by_side == []
        await d.shutdown(0)

    asyncio.run(main())


def test_a_job_held_by_a_finalizer_past_the_wait_skips_the_slot_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Held past ``WAIT_MAX`` (60 s; 0.2 s here): the slot is skipped ``ReplaceBlocked``, its
    record naming the Job and the finalizers that hold it; the next slot, the Job gone, runs."""
    monkeypatch.setattr(replace_wait, "WAIT_MAX", 0.2)
    monkeypatch.setattr(replace_wait, "LOOK_EVERY", 0.01)
    store, cluster = MemoryRunStore(), Finalized()
    now = [T0]
    task = job_task(concurrencyPolicy="Replace")

    async def main() -> None:
        d, runner = wired(cluster, store, lambda: now[0])
        d.fire(task, T0)
        await until(lambda: NAME in cluster.jobs)
        now[0] = T1
        d.fire(task, T1)
        await until(lambda: ended(store, T1))
        skipped = stored(store, T1)
        assert skipped is not None
        assert (skipped.status, skipped.reason) == (RunStatus.SKIPPED, "ReplaceBlocked")
        assert skipped.message == (
            f"Job {NAME} is being deleted but still there (finalizers: {HOLD}) after 0.2s; "
            "policy Replace starts no run beside it (the next slot looks again)"
        )
        assert list(cluster.jobs) == [NAME]
        cluster.let_go(NAME)
        now[0] = T2
        d.fire(task, T2)
        await until(lambda: [r.id for r in runner.running(KEY)] == [run_id(KEY, T2)])
        assert cluster.side_by_side == []
        await d.shutdown(0)

    asyncio.run(main())
