"""``Replace`` as a CronJob's: the Job of the run replaced is deleted first, and the new run's
Job is created only once that delete went through. A delete that fails for a while (5xx, no
answer) is tried again in the background, and the new run waits for it (a newer slot still
replaces it meanwhile, and startingDeadlineSeconds still holds); a delete refused for good
(403) skips the slot (``ReplaceBlocked``), and each later slot deletes the Job again. Before,
the new Job was created at once: every slot left one more Job running. With the in-memory
cluster (``tests.jobs.twin.FakeCluster``)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from reconciler.controller import replace_wait
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.handover import Handover
from reconciler.core.runs import RunRecord, RunStatus, run_id
from reconciler.runner import job_delete
from reconciler.store import MemoryRunStore
from tests.jobs.test_job_runner import KEY, NAME, T0, job_task, until, wired
from tests.jobs.twin import ApiError, FakeCluster

T1, T2, T3 = (T0 + timedelta(minutes=n) for n in (1, 2, 3))


@pytest.fixture(autouse=True)
def quick_looks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The waiting run looks again every 10 ms, not every second (``LOOK_EVERY``): a test that
    moves its clock past a deadline waits for that look, and a second of it under load (2
    cores, other suites) came close to the 5 s the tests give a condition."""
    monkeypatch.setattr(replace_wait, "LOOK_EVERY", 0.01)


class Deletes(FakeCluster):
    """Deletes answer ``status`` while ``refused`` is set; a Job is never created while
    another of the task runs (what the tests hold against: two Jobs side by side)."""

    def __init__(self, status: int) -> None:
        super().__init__()
        self.status = status
        self.refused = True
        self.side_by_side: list[str] = []

    async def delete(self, namespace: str, name: str, uid: str | None) -> bool:
        if self.refused:
            self.calls.append(("delete", name))
            raise ApiError(f"cannot delete Job: HTTP {self.status}", self.status)
        return await super().delete(namespace, name, uid)

    async def create(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        self.side_by_side += [name for name in self.jobs if name != body["metadata"]["name"]]
        return await super().create(body)


def deletes(cluster: FakeCluster) -> int:
    return cluster.calls.count(("delete", NAME))


def stored(store: MemoryRunStore, at: datetime) -> RunRecord | None:
    return store.get(run_id(KEY, at))


def waits(d: Dispatcher, at: datetime) -> bool:
    """The run of ``at`` has begun its wait for the delete: its wait for the runs it replaced
    is taken (``ReplaceWaits._run_attempt``: not counted against its starting deadline). A
    clock moved before that counts as that wait, not the delete's (the test then waits to
    ``WAIT_MAX``: it failed so under load, the run decided but not yet there)."""
    return run_id(KEY, at) in d._replace_waited


def ended(store: MemoryRunStore, at: datetime) -> bool:
    record = stored(store, at)
    return record is not None and record.status.finished


def test_a_delete_refused_for_good_skips_the_slot_until_the_job_is_gone() -> None:
    store, cluster = MemoryRunStore(), Deletes(403)
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
        assert f"still runs ({NAME})" in (skipped.message or "")
        replaced = stored(store, T0)
        assert replaced is not None
        assert (replaced.status, replaced.reason) == (RunStatus.FAILED, "Replaced")
        assert "tries again at the task's next slot" in (replaced.message or "")
        assert list(cluster.jobs) == [NAME]
        assert job_delete._DELETES == {}  # not tried in the background
        assert deletes(cluster) == 1

        now[0] = T2  # the next slot adopts the Job, deletes it again, and is skipped again
        d.fire(task, T2)
        await until(lambda: ended(store, T2))
        again = stored(store, T2)
        assert again is not None
        assert again.reason == "ReplaceBlocked"
        assert deletes(cluster) == 2
        assert list(cluster.jobs) == [NAME]
        assert stored(store, T0) == replaced  # stopped again: its record is as it was

        cluster.refused = False  # the right to delete Jobs granted: the next slot runs
        now[0] = T3
        d.fire(task, T3)
        await until(lambda: NAME not in cluster.jobs and len(cluster.jobs) == 1)
        assert [r.id for r in runner.running(KEY)] == [run_id(KEY, T3)]
        assert cluster.side_by_side == []
        await d.shutdown(0)

    asyncio.run(main())


def test_the_new_job_waits_for_a_delete_tried_again() -> None:
    """One 503: the delete is tried again in the background, and the new Job is created once
    it went through, not beside the old one."""
    store, cluster = MemoryRunStore(), Deletes(503)
    now = [T0]
    task = job_task(concurrencyPolicy="Replace")

    async def main() -> None:
        d, runner = wired(cluster, store, lambda: now[0])
        d.fire(task, T0)
        await until(lambda: NAME in cluster.jobs)
        now[0] = T1
        d.fire(task, T1)
        await until(lambda: deletes(cluster) == 1 and len(job_delete._DELETES) == 1)
        # The replaced run ends (its end recorded at once); the new one waits, holding its slot.
        await until(lambda: [r.id for r in d.active(KEY)] == [run_id(KEY, T1)])
        replaced = stored(store, T0)
        assert replaced is not None
        assert "tries again until it is" in (replaced.message or "")
        assert list(cluster.jobs) == [NAME]
        cluster.refused = False
        await until(lambda: NAME not in cluster.jobs and len(cluster.jobs) == 1)
        await until(lambda: [r.id for r in runner.running(KEY)] == [run_id(KEY, T1)])
        assert cluster.side_by_side == []
        await d.shutdown(0)

    asyncio.run(main())


def test_a_run_waiting_for_a_delete_is_replaced_by_the_next_slot() -> None:
    """The delete fails on (503): the run waiting for it is replaced by the next slot (it did
    not start), which waits in turn; one delete is tried again in the background, not one a
    slot; the Job ends on its own, and the latest slot's Job is created."""
    store, cluster = MemoryRunStore(), Deletes(503)
    now = [T0]
    task = job_task(concurrencyPolicy="Replace")

    async def main() -> None:
        d, _ = wired(cluster, store, lambda: now[0])
        d.fire(task, T0)
        await until(lambda: NAME in cluster.jobs)
        now[0] = T1
        d.fire(task, T1)
        await until(lambda: len(job_delete._DELETES) == 1)
        now[0] = T2
        d.fire(task, T2)
        # Stopped while it waited: its claim is written, then its end (as any run's replaced
        # while it waited to start).
        await until(lambda: ended(store, T1))
        waited = stored(store, T1)
        assert waited is not None
        assert (waited.status, waited.reason) == (RunStatus.SKIPPED, "Replaced")
        assert "it did not start" in (waited.message or "")
        assert list(cluster.jobs) == [NAME]
        assert len(job_delete._DELETES) == 1
        cluster.finish(NAME)  # it ends on its own: nothing left to delete
        await until(lambda: len(cluster.jobs) == 2)
        assert set(cluster.jobs) - {NAME}  # T2's
        assert cluster.side_by_side == [NAME]  # the old one had ended: not running
        await d.shutdown(0)

    asyncio.run(main())


def test_a_run_that_waited_for_a_delete_past_its_starting_deadline_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The delete goes through past the deadline: the run, woken by it (not by a look, which
    would find the Job still there), is skipped, its wait counted."""
    monkeypatch.setattr(replace_wait, "LOOK_EVERY", 60.0)  # woken by the retry's end alone
    store, cluster = MemoryRunStore(), Deletes(503)
    now = [T0]
    task = job_task(concurrencyPolicy="Replace", startingDeadlineSeconds=30)

    async def main() -> None:
        d, _ = wired(cluster, store, lambda: now[0])
        d.fire(task, T0)
        await until(lambda: NAME in cluster.jobs)
        now[0] = T1
        d.fire(task, T1)
        await until(lambda: len(job_delete._DELETES) == 1)
        await until(lambda: waits(d, T1))
        now[0] = T1 + timedelta(seconds=45)
        cluster.refused = False
        await until(lambda: ended(store, T1))
        late = stored(store, T1)
        assert late is not None
        assert (late.status, late.reason) == (RunStatus.SKIPPED, "MissedDeadline")
        assert late.message == (
            "not started: 45.0s after its slot, past startingDeadlineSeconds=30 (a Job it "
            "replaces was being deleted)"
        )
        assert NAME not in cluster.jobs
        assert cluster.jobs == {}
        await d.shutdown(0)

    asyncio.run(main())


class HangingRetry(Deletes):
    """The first delete is refused ``503``; the retry's is never answered (it hangs)."""

    def __init__(self) -> None:
        super().__init__(503)
        self.hang = asyncio.Event()  # never set

    async def delete(self, namespace: str, name: str, uid: str | None) -> bool:
        if deletes(self) == 0:
            return await super().delete(namespace, name, uid)
        self.calls.append(("delete", name))
        await self.hang.wait()
        return False


def test_a_run_waiting_for_a_delete_starts_at_its_next_look_once_the_job_has_ended() -> None:
    """The delete is tried again in the background and that try hangs: the Job ends on its own
    meanwhile, and the waiting run sees that at its next look (``LOOK_EVERY``), not when the
    retry ends (it never does here; else it may sleep up to verify_seconds first)."""
    store, cluster = MemoryRunStore(), HangingRetry()
    now = [T0]
    task = job_task(concurrencyPolicy="Replace")

    async def main() -> None:
        d, runner = wired(cluster, store, lambda: now[0])
        d.fire(task, T0)
        await until(lambda: NAME in cluster.jobs)
        now[0] = T1
        d.fire(task, T1)
        await until(lambda: deletes(cluster) == 2)  # the retry's delete: unanswered
        cluster.finish(NAME)
        await until(lambda: [r.id for r in runner.running(KEY)] == [run_id(KEY, T1)])
        assert job_delete._DELETES  # its retry still waits: the run did not wait for it
        assert cluster.side_by_side == [NAME]  # the old one had ended: not running
        await d.shutdown(0)

    asyncio.run(main())


def test_a_run_waits_for_a_delete_that_does_not_go_through_for_so_long_and_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A delete answered 500 for good (a webhook that is down): the run that waits for it is
    skipped ``ReplaceBlocked`` after ``WAIT_MAX`` (60 s; 0.3 s here), its record naming the Job,
    rather than waiting unrecorded until the Job ends or a later slot comes."""
    monkeypatch.setattr(replace_wait, "WAIT_MAX", 0.3)
    store, cluster = MemoryRunStore(), Deletes(500)
    now = [T0]
    task = job_task(concurrencyPolicy="Replace")

    async def main() -> None:
        d, _ = wired(cluster, store, lambda: now[0])
        d.fire(task, T0)
        await until(lambda: NAME in cluster.jobs)
        now[0] = T1
        d.fire(task, T1)
        await until(lambda: ended(store, T1))
        skipped = stored(store, T1)
        assert skipped is not None
        assert (skipped.status, skipped.reason) == (RunStatus.SKIPPED, "ReplaceBlocked")
        assert f"still runs ({NAME})" in (skipped.message or "")
        assert "did not go through in 0.3s" in (skipped.message or "")
        assert list(cluster.jobs) == [NAME]
        assert len(job_delete._DELETES) == 1  # still tried in the background
        assert d.active(KEY) == []
        cluster.refused = False
        await until(lambda: cluster.jobs == {})
        assert cluster.side_by_side == []
        await d.shutdown(0)

    asyncio.run(main())


def test_with_replicas_the_skip_of_a_blocked_replace_names_the_job() -> None:
    """With replicas the run's claim was sent as it was decided, so its skip is written over
    it (as a run that did not start): with the message that names the Job all the same."""
    store, cluster = MemoryRunStore(), Deletes(403)
    now = [T0]
    task = job_task(concurrencyPolicy="Replace")

    async def main() -> None:
        d, _ = wired(cluster, store, lambda: now[0])
        d.handover = Handover(store, d.owner, d.recorder.call, poll=0.01)
        d.fire(task, T0)
        await until(lambda: NAME in cluster.jobs)
        now[0] = T1
        d.fire(task, T1)
        await until(lambda: ended(store, T1))
        skipped = stored(store, T1)
        assert skipped is not None
        assert (skipped.status, skipped.reason) == (RunStatus.SKIPPED, "ReplaceBlocked")
        assert f"still runs ({NAME})" in (skipped.message or "")
        assert "its delete was refused" in (skipped.message or "")
        assert list(cluster.jobs) == [NAME]
        await d.shutdown(0)

    asyncio.run(main())


def test_a_run_waiting_for_a_delete_is_skipped_at_its_starting_deadline_naming_the_job() -> None:
    """A delete answered 500 for good and a deadline shorter than ``WAIT_MAX`` (60 s): the wait
    ends at the deadline (at the next look), not at ``WAIT_MAX`` or the next slot, and the skip
    (``MissedDeadline``) names the Job that blocked it. Before, the run waited on to 60 s (or
    was ``Replaced`` by the next slot), and no record named the Job."""
    store, cluster = MemoryRunStore(), Deletes(500)
    now = [T0]
    task = job_task(concurrencyPolicy="Replace", startingDeadlineSeconds=3)

    async def main() -> None:
        d, _ = wired(cluster, store, lambda: now[0])
        d.fire(task, T0)
        await until(lambda: NAME in cluster.jobs)
        now[0] = T1
        d.fire(task, T1)
        await until(lambda: len(job_delete._DELETES) == 1)
        assert not ended(store, T1)  # within its deadline: it waits
        await until(lambda: waits(d, T1))
        now[0] = T1 + timedelta(seconds=4)
        await until(lambda: ended(store, T1))
        late = stored(store, T1)
        assert late is not None
        assert (late.status, late.reason) == (RunStatus.SKIPPED, "MissedDeadline")
        assert (late.message or "").startswith(
            "not started: 4.0s after its slot, past startingDeadlineSeconds=3: the Job of the "
            f"run it replaces still runs ({NAME})"
        )
        assert late.finished_at == T1 + timedelta(seconds=4)
        assert list(cluster.jobs) == [NAME]
        assert len(job_delete._DELETES) == 1  # still tried in the background
        assert d.active(KEY) == []
        await d.shutdown(0)

    asyncio.run(main())


def test_the_skip_after_a_wait_for_a_delete_is_dated_when_it_is_decided(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The skip written after the wait ends when it is decided, not when the run was (60 s
    earlier, at times before the end of the run it replaced)."""
    monkeypatch.setattr(replace_wait, "WAIT_MAX", 0.5)
    store, cluster = MemoryRunStore(), Deletes(500)
    now = [T0]
    task = job_task(concurrencyPolicy="Replace")

    async def main() -> None:
        d, _ = wired(cluster, store, lambda: now[0])
        d.fire(task, T0)
        await until(lambda: NAME in cluster.jobs)
        now[0] = T1
        d.fire(task, T1)
        await until(lambda: len(job_delete._DELETES) == 1)
        now[0] = T1 + timedelta(seconds=60)
        await until(lambda: ended(store, T1))
        skipped, replaced = stored(store, T1), stored(store, T0)
        assert skipped is not None
        assert replaced is not None
        assert skipped.reason == "ReplaceBlocked"
        assert skipped.finished_at == T1 + timedelta(seconds=60)
        assert replaced.finished_at is not None
        assert replaced.finished_at <= skipped.finished_at
        await d.shutdown(0)

    asyncio.run(main())


def test_a_run_asked_for_by_hand_waits_for_a_delete_past_the_starting_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """startingDeadlineSeconds does not hold for a run asked for by hand: it waits up to
    ``WAIT_MAX`` (0.3 s here), then is skipped ``ReplaceBlocked``."""
    monkeypatch.setattr(replace_wait, "WAIT_MAX", 0.3)
    store, cluster = MemoryRunStore(), Deletes(500)
    now = [T0]
    task = job_task(concurrencyPolicy="Replace", startingDeadlineSeconds=3)

    async def main() -> None:
        d, _ = wired(cluster, store, lambda: now[0])
        d.fire(task, T0)
        await until(lambda: NAME in cluster.jobs)
        now[0] = T1
        manual = d.fire_manual(task)
        await until(lambda: len(job_delete._DELETES) == 1)
        now[0] = T1 + timedelta(seconds=4)
        await until(lambda: [r.id for r in d.active(KEY)] == [manual.id])
        await until(lambda: (r := store.get(manual.id)) is not None and r.status.finished)
        skipped = store.get(manual.id)
        assert skipped is not None
        assert (skipped.status, skipped.reason) == (RunStatus.SKIPPED, "ReplaceBlocked")
        assert "did not go through in 0.3s" in (skipped.message or "")
        await d.shutdown(0)

    asyncio.run(main())


def test_with_replicas_the_skip_at_the_starting_deadline_names_the_job() -> None:
    """As without replicas: the claim sent as the run was decided is answered, then the skip
    (``MissedDeadline``, naming the Job) is written over it, when it is decided."""
    store, cluster = MemoryRunStore(), Deletes(500)
    now = [T0]
    task = job_task(concurrencyPolicy="Replace", startingDeadlineSeconds=3)

    async def main() -> None:
        d, _ = wired(cluster, store, lambda: now[0])
        d.handover = Handover(store, d.owner, d.recorder.call, poll=0.01)
        d.fire(task, T0)
        await until(lambda: NAME in cluster.jobs)
        now[0] = T1
        d.fire(task, T1)
        await until(lambda: len(job_delete._DELETES) == 1)
        await until(lambda: waits(d, T1))
        now[0] = T1 + timedelta(seconds=4)
        await until(lambda: ended(store, T1))
        late = stored(store, T1)
        assert late is not None
        assert (late.status, late.reason) == (RunStatus.SKIPPED, "MissedDeadline")
        assert f"still runs ({NAME})" in (late.message or "")
        assert late.finished_at == T1 + timedelta(seconds=4)
        assert list(cluster.jobs) == [NAME]
        await d.shutdown(0)

    asyncio.run(main())


class SlowFirstDelete(Deletes):
    """The first delete takes 5 s of the clock, then is refused ``503`` once; the background
    retry goes through at once."""

    def __init__(self, now: list[datetime]) -> None:
        super().__init__(503)
        self.now, self.refused, self.asked = now, False, 0

    async def delete(self, namespace: str, name: str, uid: str | None) -> bool:
        self.asked += 1
        if self.asked == 1:
            self.now[0] += timedelta(seconds=5)
            self.calls.append(("delete", name))
            raise ApiError("cannot delete Job: HTTP 503", 503)
        return await super().delete(namespace, name, uid)


def test_a_delete_tried_again_counts_its_own_wait_not_the_replaced_run_s_stop() -> None:
    """startingDeadlineSeconds 3; the replaced Job's first delete took 5 s (the replaced run's
    stop, not counted), then was refused once, and its retry went through at once: the slot
    starts. It was skipped at once, ``not started: 5.0s after its slot``, the stop counted."""
    store = MemoryRunStore()
    now = [T0]
    cluster = SlowFirstDelete(now)
    task = job_task(concurrencyPolicy="Replace", startingDeadlineSeconds=3)

    async def main() -> None:
        d, _ = wired(cluster, store, lambda: now[0])
        d.fire(task, T0)
        await until(lambda: NAME in cluster.jobs)
        now[0] = T1
        d.fire(task, T1)
        await until(lambda: (r := stored(store, T1)) is not None and r.started_at is not None)
        await d.shutdown(0)

    asyncio.run(main())
    record = stored(store, T1)
    assert record is not None
    assert record.reason != "MissedDeadline", record.message
    assert cluster.asked == 2  # refused once, then through
