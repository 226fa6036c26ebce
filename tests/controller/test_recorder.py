"""Run records survive a store outage: kept, retried, written once it is back."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.lane import CLAIM_BATCH
from reconciler.controller.recorder import Recorder
from reconciler.controller.waiting import CUT_TO, SAVE
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import MemoryRunStore
from reconciler.store.base import DuplicateRun, RunQuery, StoreUnavailable
from tests.helpers import definition, local_actions

T0 = datetime(2026, 11, 26, 12, tzinfo=UTC)


class OutageStore(MemoryRunStore):
    """The in-memory store, with an outage switch: while down, every call raises
    StoreUnavailable exactly as the SQL store does when its database is unreachable."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        if name in {"claim", "complete", "get", "query"} and super().__getattribute__("down"):

            def unavailable(*args: Any, **kwargs: Any) -> Any:
                raise StoreUnavailable("connection refused")

            return unavailable
        return attr

    # The batch write too: the twin's own does not go through ``complete``.
    def save_many(self, records: Sequence[RunRecord]) -> list[RunRecord]:
        if self.down:
            raise StoreUnavailable("connection refused")
        return super().save_many(records)


def record(minute: int, status: RunStatus = RunStatus.RUNNING) -> RunRecord:
    at = T0 + timedelta(minutes=minute)
    return RunRecord(
        run_id("default/job", at), "default/job", at, Trigger.SCHEDULE, status, started_at=at
    )


def test_records_written_during_an_outage_arrive_when_it_ends() -> None:
    store = OutageStore()

    async def main() -> None:
        recorder = Recorder(store, retry_initial=0.01, retry_max=0.05)
        store.down = True
        assert await recorder.claim(record(0)) is False  # run anyway
        assert await recorder.save(record(0, RunStatus.SUCCEEDED)) is False
        assert await recorder.add(record(1, RunStatus.SKIPPED)) is False
        assert recorder.pending == 2  # coalesced: one entry per (id, attempt)
        assert await recorder.flush(0.1) is False
        store.down = False
        assert await recorder.flush(5)
        await recorder.close(1)

    asyncio.run(main())
    first, second = store.get(record(0).id), store.get(record(1).id)
    assert first is not None
    assert first.status is RunStatus.SUCCEEDED
    assert second is not None
    assert second.status is RunStatus.SKIPPED


def test_a_kept_skip_never_overwrites_a_slot_someone_else_recorded() -> None:
    store = OutageStore()

    async def main() -> None:
        recorder = Recorder(store, retry_initial=0.01)
        store.down = True
        await recorder.add(record(0, RunStatus.SKIPPED))
        store.down = False
        store.claim(record(0, RunStatus.SUCCEEDED))  # another instance ran the slot
        assert await recorder.flush(5)
        await recorder.close(1)

    asyncio.run(main())
    kept = store.get(record(0).id)
    assert kept is not None
    assert kept.status is RunStatus.SUCCEEDED


def mine(minute: int, status: RunStatus = RunStatus.RUNNING) -> RunRecord:
    return dataclasses.replace(record(minute, status), owner="a:1:boot")


def test_a_kept_claim_never_overwrites_a_slot_someone_else_recorded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = OutageStore()
    theirs = dataclasses.replace(record(0, RunStatus.SUCCEEDED), owner="b:1:boot", output="b")

    async def main() -> None:
        recorder = Recorder(store, retry_initial=0.01)
        store.down = True
        assert await recorder.claim(mine(0)) is False  # runs anyway; the claim waits
        assert await recorder.claim(mine(1)) is False
        assert await recorder.save(mine(1, RunStatus.FAILED)) is False  # coalesced, still a claim
        store.down = False
        store.claim(theirs)  # another instance claimed and ran both slots meanwhile
        store.claim(
            dataclasses.replace(theirs, id=record(1).id, scheduled_at=record(1).scheduled_at)
        )
        assert await recorder.flush(5)
        # The run this process started anyway ends after the flush: still not written over.
        assert await recorder.save(mine(0, RunStatus.FAILED)) is False
        await recorder.close(1)

    asyncio.run(main())
    assert store.get(record(0).id) == theirs
    held = store.get(record(1).id)
    assert held is not None
    assert (held.owner, held.status) == ("b:1:boot", RunStatus.SUCCEEDED)
    refused = [
        (r.fields["run"], r.fields["status"])  # type: ignore[attr-defined]
        for r in caplog.records
        if r.getMessage().startswith("slot recorded by another instance")
    ]
    # The kept claims in either order (a record the store does not take goes to the back of
    # the line), then the run that ended after the flush.
    assert sorted(refused[:2]) == [
        (record(0).id, RunStatus.RUNNING),
        (record(1).id, RunStatus.FAILED),
    ]
    assert refused[2:] == [(record(0).id, RunStatus.FAILED)]


class LostAnswerStore(MemoryRunStore):
    """Its first ``claim_many`` is written, then the connection drops before the answer."""

    lost = False

    def claim_many(self, records: Any) -> list[bool]:
        written = super().claim_many(records)
        if not self.lost:
            self.lost = True
            raise StoreUnavailable("server closed the connection unexpectedly")
        return written


def test_a_claim_whose_answer_was_lost_is_recognised_as_this_process_own() -> None:
    store = LostAnswerStore()

    async def main() -> None:
        recorder = Recorder(store, retry_initial=0.01)
        assert await recorder.claim(mine(0)) is False  # no answer: kept, run anyway
        assert await recorder.save(mine(0, RunStatus.SUCCEEDED)) is False  # behind the claim
        assert await recorder.flush(5)
        await recorder.close(1)

    asyncio.run(main())
    held = store.get(record(0).id)
    assert held is not None
    assert (held.owner, held.status) == ("a:1:boot", RunStatus.SUCCEEDED)


def test_a_full_buffer_drops_the_oldest_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    store = OutageStore()

    async def main() -> None:
        recorder = Recorder(store, capacity=3, retry_initial=0.01)
        store.down = True
        for minute in range(5):
            await recorder.save(record(minute, RunStatus.SUCCEEDED))
        assert (recorder.pending, recorder.dropped) == (3, 2)
        store.down = False
        assert await recorder.flush(5)
        await recorder.close(1)

    asyncio.run(main())
    dropped = [
        r.fields["run"]  # type: ignore[attr-defined]
        for r in caplog.records
        if r.getMessage() == "run record buffer full; oldest record dropped"
    ]
    # The first record was on its way to the store (the flush had begun, and failed later):
    # the first ones not being written go, since dropping one in flight would free nothing,
    # and would say lost what its write may yet bring to the store.
    assert dropped == [record(1).id, record(2).id]
    assert all(store.get(record(m).id) is not None for m in (0, 3, 4))
    assert all(store.get(record(m).id) is None for m in (1, 2))


def test_runs_still_execute_while_the_store_is_down() -> None:
    store = OutageStore()
    job = definition("job", command={"args": ["sh", "-c", "exit 0"]})

    async def main() -> None:
        recorder = Recorder(store, retry_initial=0.01)
        d = Dispatcher(
            store, owner="h:1:x", clock=lambda: T0, recorder=recorder, actions=local_actions()
        )
        store.down = True
        d.fire(job, T0)
        assert await d.drain(10)
        assert store.down  # nothing could be written yet...
        store.down = False
        assert await recorder.flush(5)  # ...and nothing was lost
        await d.shutdown(0)

    asyncio.run(main())
    kept = store.get(run_id("default/job", T0))
    assert kept is not None
    assert kept.status is RunStatus.SUCCEEDED


class CountingStore(MemoryRunStore):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def claim_many(self, records: Any) -> list[bool]:
        self.batches.append(len(records))
        if any(r.message == "unstorable" for r in records):
            raise ValueError("the store refuses this record")
        return super().claim_many(records)

    def save_many(self, records: Any) -> list[RunRecord]:
        self.batches.append(len(records))
        if any(r.message == "unstorable" for r in records):
            raise ValueError("the store refuses this record")
        return super().save_many(records)


def test_claims_go_at_once_and_those_made_meanwhile_together() -> None:
    store = CountingStore()
    store.claim(record(3))

    async def main() -> list[bool | BaseException]:
        recorder = Recorder(store)
        outcomes = await asyncio.gather(
            *(recorder.claim(record(m)) for m in range(100)), return_exceptions=True
        )
        await recorder.close(1)
        return outcomes

    outcomes = asyncio.run(main())
    # The first claim does not wait for the others; the 99 made while it was on its way go
    # in one batch.
    assert store.batches == [1, 99]
    assert sum(o is True for o in outcomes) == 99
    (refused,) = [o for o in outcomes if o is not True]
    assert isinstance(refused, DuplicateRun)


def test_a_burst_of_claims_goes_in_batches_of_bounded_size() -> None:
    store = CountingStore()
    burst = CLAIM_BATCH * 2 + 5

    async def main() -> list[bool]:
        recorder = Recorder(store)
        outcomes = await asyncio.gather(*(recorder.claim(record(m)) for m in range(burst)))
        await recorder.close(1)
        return outcomes

    assert asyncio.run(main()) == [True] * burst
    assert store.batches == [1, CLAIM_BATCH, CLAIM_BATCH, 4]


def test_claims_waiting_go_before_saves_waiting() -> None:
    order: list[str] = []

    class OrderedStore(MemoryRunStore):
        def claim_many(self, records: Any) -> list[bool]:
            order.append("claim")
            return super().claim_many(records)

        def save_many(self, records: Any) -> list[RunRecord]:
            order.append("save")
            return super().save_many(records)

    store = OrderedStore()

    async def main() -> None:
        recorder = Recorder(store)
        first = recorder.claim_soon(record(0))  # on its way: the rest wait behind it
        saved = recorder.save(record(1, RunStatus.SUCCEEDED))
        claimed = recorder.claim(record(2))
        await asyncio.gather(first, saved, claimed)
        await recorder.close(1)

    asyncio.run(main())
    assert order == ["claim", "claim", "save"]


def test_records_saved_while_a_write_is_on_its_way_go_together() -> None:
    store = CountingStore()

    async def main() -> list[bool]:
        recorder = Recorder(store)
        saved = await asyncio.gather(
            *(recorder.save(record(m, RunStatus.SUCCEEDED)) for m in range(100))
        )
        await recorder.close(1)
        return saved

    assert asyncio.run(main()) == [True] * 100
    assert store.batches == [1, 99]
    assert len(store.query(RunQuery(status=RunStatus.SUCCEEDED, limit=200)).items) == 100


def test_a_record_the_store_refuses_does_not_cost_the_rest_of_its_batch() -> None:
    store = CountingStore()
    bad = dataclasses.replace(record(7, RunStatus.FAILED), message="unstorable")

    async def main() -> list[bool]:
        recorder = Recorder(store)
        batch = [record(m, RunStatus.SUCCEEDED) for m in range(5)] + [bad]
        saved = await asyncio.gather(*(recorder.save(r) for r in batch))
        await recorder.close(1)
        return saved

    assert asyncio.run(main()) == [True] * 5 + [False]
    # The first alone, then the batch, then the batch's records one by one; the refused one
    # is kept and tried twice more alone (REFUSED_TRIES in all), then dropped.
    assert store.batches == [1, 5, 1, 1, 1, 1, 1, 1, 1]
    assert [store.get(record(m).id) is not None for m in range(5)] == [True] * 5


def test_a_claim_the_store_refuses_leaves_the_rest_of_its_batch_claimed() -> None:
    store = CountingStore()
    store.claim(record(3))  # another instance holds this slot
    bad = dataclasses.replace(record(7), message="unstorable")

    async def main() -> list[bool | BaseException]:
        recorder = Recorder(store)
        batch = [record(m) for m in range(5)] + [bad]
        outcomes = await asyncio.gather(*(recorder.claim(r) for r in batch), return_exceptions=True)
        await recorder.close(1)
        return outcomes

    outcomes = asyncio.run(main())
    # The first alone, then the batch, then the batch's claims one by one: each is told
    # whether its slot is its own, and only the refused one hears the store's error.
    assert store.batches == [1, 5, 1, 1, 1, 1, 1]
    assert outcomes[:3] == [True, True, True]
    assert isinstance(outcomes[3], DuplicateRun)
    assert outcomes[4] is True
    assert isinstance(outcomes[5], ValueError)
    assert [store.get(record(m).id) is not None for m in range(5)] == [True] * 5


def test_a_record_after_close_is_said_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> list[bool]:
        recorder = Recorder(MemoryRunStore())
        await recorder.close(1)
        return [
            await recorder.save(record(0, RunStatus.SUCCEEDED)),
            await recorder.add(record(1, RunStatus.SKIPPED)),
            await recorder.save(record(2, RunStatus.SUCCEEDED)),  # nothing left stuck
        ]

    assert asyncio.run(main()) == [False, False, False]
    said = [r for r in caplog.records if r.getMessage().startswith("run record not written")]
    assert [r.fields["run"] for r in said] == [record(m).id for m in range(3)]  # type: ignore[attr-defined]


def test_a_write_the_store_threads_cannot_take_stops_no_write_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Handing a write to the store's threads can fail (a thread that cannot start: a pids
    limit reached). That claim is kept for later and its run goes on, as in an outage; the
    writes after it go on as before. Before, the lane stayed busy: no claim was ever answered
    again, and no task ran, long after the limit was gone."""
    store = MemoryRunStore()

    async def main() -> None:
        recorder = Recorder(store, retry_initial=0.01)
        real = recorder._pool.submit
        refusals = [RuntimeError("can't start new thread")]

        def submit(fn: Any, /, *args: Any) -> Any:
            if refusals:
                raise refusals.pop()
            return real(fn, *args)

        monkeypatch.setattr(recorder._pool, "submit", submit)
        assert await asyncio.wait_for(recorder.claim(record(0)), 5) is False  # runs anyway
        assert await asyncio.wait_for(recorder.claim(record(1)), 5) is True
        assert await recorder.flush(5)  # the kept claim, written once the store takes it
        await recorder.close(1)

    asyncio.run(main())
    assert store.get(record(0).id) is not None
    assert store.get(record(1).id) is not None


def test_the_store_threads_run_before_any_write_comes() -> None:
    """Started with the recorder, not at the first burst: a thread that cannot start then (a
    pids limit reached since) can no longer stop a write."""

    async def main() -> int:
        recorder = Recorder(MemoryRunStore(), io_threads=3)
        started = len(recorder._pool._threads)
        await recorder.close(1)
        return started

    assert asyncio.run(main()) == 3


class LockedRowStore(MemoryRunStore):
    """A store in which one row is locked by another process for as long as ``locked`` names
    it: a write that touches it gives up as the SQL store's lock wait does (StoreUnavailable),
    and the whole transaction with it. ``writes`` counts the batches offered."""

    def __init__(self) -> None:
        super().__init__()
        self.locked: str | None = None
        self.writes = 0

    def _touch(self, records: Any) -> None:
        self.writes += 1
        if any(r.id == self.locked for r in records):
            raise StoreUnavailable("canceling statement due to lock timeout")

    def claim_many(self, records: Any) -> list[bool]:
        self._touch(records)
        return super().claim_many(records)

    def save_many(self, records: Any) -> list[RunRecord]:
        self._touch(records)
        return super().save_many(records)


def test_a_record_whose_row_stays_locked_holds_back_only_itself() -> None:
    """The kept records used to be written one by one, in order: the first, its row locked
    by another process for good, timed out again and again, and every record behind it
    waited (and past the buffer's capacity, was dropped)."""
    store = LockedRowStore()
    records = [record(minute, RunStatus.SUCCEEDED) for minute in range(6)]

    async def main() -> None:
        recorder = Recorder(store, retry_initial=0.01, retry_max=0.05)
        for r in records:
            await recorder.claim(dataclasses.replace(r, status=RunStatus.RUNNING))
        store.locked = records[0].id
        assert await recorder.save(records[0]) is False  # kept: its row is locked
        for r in records[1:]:
            await recorder.save(r)  # kept behind it, in order
        # Everything but the locked record arrives while the lock is held.
        assert await recorder.flush(0.5) is False
        assert recorder.pending == 1
        assert all(store.get(r.id).status is RunStatus.SUCCEEDED for r in records[1:])  # type: ignore[union-attr]
        held = store.get(records[0].id)
        assert held is not None
        assert held.status is RunStatus.RUNNING
        store.locked = None  # the other process lets go
        assert await recorder.flush(5)
        await recorder.close(1)

    asyncio.run(main())
    first = store.get(records[0].id)
    assert first is not None
    assert first.status is RunStatus.SUCCEEDED


def test_records_kept_through_an_outage_are_written_in_batches() -> None:
    """A thousand records kept through an outage cost a few writes once the store is back,
    not a thousand."""
    store = LockedRowStore()
    many = 1000

    async def main() -> None:
        recorder = Recorder(store, capacity=2 * many, retry_initial=0.01, retry_max=0.05)
        original = store._touch

        def down(records: Any) -> None:
            original(records)
            raise StoreUnavailable("connection refused")

        store._touch = down  # type: ignore[method-assign]
        for minute in range(many):
            await recorder.save(record(minute, RunStatus.SUCCEEDED))
        assert recorder.pending == many
        assert await recorder.flush(0.2) is False  # the retries narrow down to one record
        store._touch = original  # type: ignore[method-assign]
        store.writes = 0
        assert await recorder.flush(5)
        await recorder.close(1)

    asyncio.run(main())
    # Batches grow back, doubling, to 512: 1 + 2 + ... + 256 + 489 (was: 1 000 writes).
    assert store.writes <= 12
    assert all(store.get(record(m).id) is not None for m in range(many))


def test_outputs_waiting_for_the_store_are_bounded_and_no_record_is_lost_for_one() -> None:
    """10 000 runs printing 64 KiB each, kept through an outage, held more than a gigabyte.
    Past the budget, a record keeps the end of its output, marked; every record arrives."""
    store = OutageStore()
    output = "".join(f"line {n}\n" for n in range(1000))  # 8 890 characters

    async def main() -> None:
        recorder = Recorder(store, output_budget=3 * len(output), retry_initial=0.01)
        store.down = True
        for minute in range(10):
            await recorder.save(
                dataclasses.replace(record(minute, RunStatus.FAILED), output=output)
            )
        assert recorder.pending == 10
        assert recorder._pending.chars <= 3 * len(output) + 7 * 2 * CUT_TO
        store.down = False
        assert await recorder.flush(5)
        await recorder.close(1)

    asyncio.run(main())
    kept = [store.get(record(minute).id) for minute in range(10)]
    assert [r.output if r else None for r in kept[:3]] == [output] * 3
    for cut in kept[3:]:
        assert cut is not None
        assert cut.status is RunStatus.FAILED
        assert cut.output.startswith("[output cut to its last 1,024 characters")
        assert cut.output.endswith(output[-CUT_TO:])


def test_a_record_kept_behind_a_locked_one_does_not_wait_for_a_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With one row locked for good, every record saved goes behind it. The loop slept once
    nothing had been written since its last sleep, so a record that came while the locked one
    was being tried waited out a backoff (up to 30 s) before its own first try."""
    store = LockedRowStore()
    stuck, later = record(0, RunStatus.SUCCEEDED), record(1, RunStatus.SUCCEEDED)
    real_sleep = asyncio.sleep
    slept: list[str] = []  # which record was kept behind the locked one at each sleep

    recorder = Recorder(store, retry_initial=30, retry_max=30)

    async def sleep(delay: float, tried: int) -> None:  # instant, but counted
        slept.append("after" if recorder.pending > 1 else "before")
        await real_sleep(0)

    async def main() -> None:
        await recorder.claim(dataclasses.replace(stuck, status=RunStatus.RUNNING))
        store.locked = stuck.id
        monkeypatch.setattr(recorder, "_backoff", sleep)
        assert await recorder.save(stuck) is False  # kept: its row is locked
        while not slept:  # the locked record was tried alone, and the loop slept
            await real_sleep(0.01)
        assert await recorder.save(later) is False  # kept behind it
        while store.get(later.id) is None:
            await real_sleep(0.01)
        assert "after" not in slept  # tried at once, not after a backoff
        store.locked = None
        # Still instant: the loop may be on its way to another backoff (30 s) for the locked
        # record, and with the real sleep back the flush would wait it out.
        assert await recorder.flush(5)
        monkeypatch.undo()
        await recorder.close(1)

    asyncio.run(main())


def test_a_newer_state_of_a_refused_record_gets_its_own_tries() -> None:
    """The running state refused twice, then the run ends: its final record has REFUSED_TRIES
    tries of its own (it inherited the running state's two, and was dropped after one)."""
    running = record(1)
    key = (running.id, running.attempt)

    async def main() -> list[int | None]:
        recorder = Recorder(MemoryRunStore())
        recorder._keep(running, SAVE)
        recorder._refusals[key] = 2  # as _keep_refused counts them
        recorder._keep(running, SAVE)  # the same state, tried again: its count stands
        counts = [recorder._refusals.get(key)]
        recorder._keep(dataclasses.replace(running, status=RunStatus.SUCCEEDED), SAVE)
        counts.append(recorder._refusals.get(key))
        await recorder.close(1)
        return counts

    assert asyncio.run(main()) == [2, None]


def test_an_outage_says_each_thing_it_does_once(caplog: pytest.LogCaptureFixture) -> None:
    """A save kept first, then a claim the store cannot check: each is warned of once, the
    claim's "running anyway" included (one flag for both swallowed it), and later batches are
    counted in the "back" line."""

    class Down(OutageStore):
        def __getattribute__(self, name: str) -> Any:
            if name in {"save_many", "claim_many"} and object.__getattribute__(self, "down"):

                def unavailable(*args: Any, **kwargs: Any) -> Any:
                    raise StoreUnavailable("connection refused")

                return unavailable
            return super().__getattribute__(name)

    store = Down()

    async def main() -> None:
        recorder = Recorder(store, retry_initial=0.01, retry_max=0.05)
        assert await recorder.claim(record(0))
        store.down = True
        assert await recorder.save(record(0, RunStatus.SUCCEEDED)) is False
        for minute in (1, 2):
            assert await recorder.claim(record(minute)) is False  # runs anyway, unchecked
        store.down = False
        assert await recorder.flush(5)
        await recorder.close(1)

    with caplog.at_level(logging.INFO, logger="crontask.recorder"):
        asyncio.run(main())
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("run store unavailable; records kept for later") == 1
    assert messages.count("run store unavailable; running anyway, records kept for later") == 1
    [back] = [r for r in caplog.records if r.getMessage().startswith("run store back")]
    assert back.__dict__["fields"]["kept_since_warning"] == 1
