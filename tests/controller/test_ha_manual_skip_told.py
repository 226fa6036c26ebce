"""With replicas, a manual run skipped here reaches the run listeners (metrics, the notifier,
the Kubernetes Events, the status) once its record is written, exactly once, as a slot's skip
does: the one under Forbid beside another replica's run (``ConcurrencyForbid``), and the one
whose claim the store could not check (``StoreUnavailable``), whose record waits for the store
and is written by the recorder's buffer. Not when it is never written (lost at the stop). Two
dispatchers share one in-memory store; one reaches it through a ``Cut``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import cast

from reconciler.controller.claims import STORE_UNAVAILABLE
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.handover import Handover
from reconciler.controller.recorder import Recorder
from reconciler.core.runs import RunRecord, RunStatus
from reconciler.store import MemoryRunStore
from reconciler.store.base import ExclusiveClaim, RunStore, StoreUnavailable
from tests.controller.test_manual_run_unchecked_by_store import LostAnswer, cut_replica, finish
from tests.controller.test_replica_policies import T0, replica, until
from tests.helpers import definition, local_actions


def skips(heard: list[RunRecord]) -> list[RunRecord]:
    return [r for r in heard if r.status is RunStatus.SKIPPED]


def test_a_manual_run_unchecked_is_heard_once_its_kept_skip_is_written() -> None:
    job = definition("job", concurrencyPolicy="Forbid")
    store = MemoryRunStore()
    asked: list[RunRecord] = []
    heard: list[RunRecord] = []

    async def main() -> None:
        b, cut = cut_replica(store, "b:2:y")
        b.d.subscribe(heard.append)
        cut.down = True
        asked.append(b.d.fire_manual(job))
        assert await b.d.drain(5)  # decided: not started, its skip kept for the store
        assert b.action.attempts == []
        assert b.d.recorder.pending == 1
        assert skips(heard) == []  # nothing is written yet
        cut.down = False
        assert await b.d.recorder.flush(5)  # written, and told as it was
        assert len(skips(heard)) == 1
        await finish(b)

    asyncio.run(main())
    record = store.get(asked[0].id)
    assert record is not None
    assert (record.status, record.reason) == (RunStatus.SKIPPED, STORE_UNAVAILABLE)
    assert skips(heard) == [record]


def test_a_manual_run_unchecked_whose_skip_is_never_written_is_not_heard() -> None:
    job = definition("job", concurrencyPolicy="Replace")
    store = MemoryRunStore()
    heard: list[RunRecord] = []

    async def main() -> None:
        b, cut = cut_replica(store, "b:2:y")
        b.d.subscribe(heard.append)
        cut.down = True
        asked = b.d.fire_manual(job)
        assert await b.d.drain(5)
        assert b.d.recorder.pending == 1
        await b.d.shutdown(0)  # the store still away: the skip is lost, said as lost
        assert b.d.recorder.lost == 1
        assert store.get(asked.id) is None

    asyncio.run(main())
    assert skips(heard) == []


def test_a_manual_run_unchecked_whose_skip_is_written_at_once_is_heard_once() -> None:
    """The look's answer was lost, and the store answers the skip's write: heard at once, as
    before, and not a second time."""
    job = definition("job", concurrencyPolicy="Forbid")
    store = LostAnswer()
    asked: list[RunRecord] = []
    heard: list[RunRecord] = []

    async def main() -> None:
        a = replica(store, "a:1:x", T0 + timedelta(seconds=1))
        a.d.subscribe(heard.append)
        asked.append(a.d.fire_manual(job))
        assert await a.d.drain(5)
        assert a.d.recorder.pending == 0
        assert await a.d.recorder.flush(5)
        await a.d.shutdown(0)

    asyncio.run(main())
    record = store.get(asked[0].id)
    assert record is not None
    assert record.reason == STORE_UNAVAILABLE
    assert skips(heard) == [record]


def test_a_manual_run_forbidden_beside_another_replica_s_run_is_heard_once() -> None:
    job = definition("job", concurrencyPolicy="Forbid")
    store = MemoryRunStore()
    asked: list[RunRecord] = []
    heard: list[RunRecord] = []

    async def main() -> None:
        a = replica(store, "a:1:x", T0 + timedelta(seconds=1))
        b = replica(store, "b:2:y", T0 + timedelta(seconds=2))
        b.d.subscribe(heard.append)
        asked.append(a.d.fire_manual(job))
        await until(lambda: bool(a.action.running()))
        asked.append(b.d.fire_manual(job))
        assert await b.d.drain(5)
        assert b.action.attempts == []
        await finish(a, b)

    asyncio.run(main())
    record = store.get(asked[1].id)
    assert record is not None
    assert (record.status, record.reason) == (RunStatus.SKIPPED, "ConcurrencyForbid")
    assert skips(heard) == [record]


class SlowSave(MemoryRunStore):
    """The look for another replica's run fails as unavailable; a ``save_many`` waits for the
    test's release (its answer comes after ``answer_wait``), then writes."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.saving = threading.Event()
        self.saved = threading.Event()

    def claim_exclusive(self, records: Sequence[RunRecord]) -> list[ExclusiveClaim]:
        raise StoreUnavailable("connection refused")

    def save_many(self, records: Sequence[RunRecord]) -> list[RunRecord]:
        self.saving.set()
        assert self.release.wait(5)
        left = super().save_many(records)
        self.saved.set()
        return left


def test_a_manual_run_unchecked_whose_skip_is_answered_late_is_heard_once() -> None:
    """Its save answered after ``answer_wait``: kept, then written by the late call and again
    by the buffer, and heard of once, after the buffer's write."""
    job = definition("job", concurrencyPolicy="Forbid")
    store = SlowSave()
    asked: list[RunRecord] = []
    heard: list[RunRecord] = []

    async def main() -> None:
        seen = cast(RunStore, store)
        recorder = Recorder(seen, retry_initial=0.01, answer_wait=0.05)
        now = T0 + timedelta(seconds=1)
        d = Dispatcher(
            seen, owner="a:1:x", clock=lambda: now, actions=local_actions(), recorder=recorder
        )
        d.handover = Handover(seen, "a:1:x", recorder.call, poll=0.01)
        d.subscribe(heard.append)
        asked.append(d.fire_manual(job))
        assert await d.drain(5)  # the save gave up waiting: kept
        assert store.saving.is_set()
        assert not store.saved.is_set()  # its answer has not come
        assert recorder.pending == 1
        assert skips(heard) == []
        store.release.set()
        assert await recorder.flush(5)
        assert store.saved.is_set()
        await d.shutdown(0)

    asyncio.run(main())
    record = store.get(asked[0].id)
    assert record is not None
    assert record.reason == STORE_UNAVAILABLE
    assert skips(heard) == [record]
