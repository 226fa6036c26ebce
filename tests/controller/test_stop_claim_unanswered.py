"""A run stopped while its claim waits for a run store that does not answer (``--ha``: a slot's
claim waits for the store's own answer, however late) stops waiting: crontask's stop was held
for as long as the store was silent (154 s behind a frozen proxy), since drain waits for every
run. It never starts its process, and the claim's answer, when it comes, says what is written:
taken, the attempt's record over the claim (``interrupted``, Shutdown, it did not start: as a
run the stop cut before it started), so no claim is left ``running``; not taken, nothing (the
slot is caught up where the task is owned next). A real SQLite store behind a switch that holds
the claim the way a silent network held PostgreSQL's; real processes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from reconciler.controller.active import SHUTDOWN
from reconciler.core.desired import Definition
from reconciler.core.runs import RunRecord, RunStatus, run_id
from reconciler.store import RunStore, open_store, sqlite_url
from reconciler.store.exclusive import ExclusiveClaim
from tests.controller.test_forbid_after_outage import T0, SilentHa, dispatcher
from tests.controller.test_recorder_silent_store import until
from tests.helpers import definition

WAIT = 10.0  # seconds: reached only by a test that fails
# The store call each policy's claim makes with replicas: Forbid's looks for another replica's
# run in the same transaction.
CLAIMS = [("Allow", "claim_many"), ("Forbid", "claim_exclusive")]


class Held(SilentHa):
    """``SilentHa``, saying when the held call has ended (answered or failed)."""

    def __init__(self, store: RunStore) -> None:
        super().__init__(store)
        self.ended = threading.Event()

    def _held(self, kind: str, write: Callable[[], object]) -> bool:
        if self._kind != kind:
            return False
        try:
            return super()._held(kind, write)
        finally:
            self.ended.set()


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[RunStore]:
    opened = open_store(sqlite_url(tmp_path / "state"), writer=True)
    yield opened
    opened.close()


def _job(marker: Path, policy: str) -> Definition:
    return definition("job", command={"args": ["touch", str(marker)]}, concurrencyPolicy=policy)


@pytest.mark.parametrize(("policy", "call"), CLAIMS)
def test_a_stop_is_not_held_by_a_claim_the_store_does_not_answer(
    sqlite: RunStore, tmp_path: Path, policy: str, call: str
) -> None:
    held, marker = Held(sqlite), tmp_path / "ran"
    job = _job(marker, policy)

    async def main() -> None:
        d = dispatcher(held, ha=True)
        held.silence(call)
        d.fire(job, T0)
        await until("the claim to be held", held.holding.is_set)
        stopping = asyncio.ensure_future(d.shutdown(0.0))
        try:
            done, _ = await asyncio.wait({stopping}, timeout=WAIT)
            assert done, "the stop waited for the store's answer to the claim"
            assert not held.ended.is_set()  # the store was silent throughout
        finally:
            held.release(lands=False)  # the connection failed: the claim never landed
            await stopping
            await until("the held call to end", held.ended.is_set)
        assert not marker.exists()  # its process never started
        assert sqlite.get(run_id(job.key, T0), 1) is None  # caught up where the task is owned

    asyncio.run(main())


@pytest.mark.parametrize(("policy", "call"), CLAIMS)
def test_a_claim_answered_after_its_run_was_stopped_is_ended_not_run(
    sqlite: RunStore, tmp_path: Path, policy: str, call: str
) -> None:
    held, marker = Held(sqlite), tmp_path / "ran"
    job = _job(marker, policy)
    run = run_id(job.key, T0)

    async def main() -> None:
        d = dispatcher(held, ha=True)
        heard: list[RunStatus] = []
        d.subscribe(lambda record: heard.append(record.status))
        held.silence(call)
        d.fire(job, T0)
        await until("the claim to be held", held.holding.is_set)
        assert d.stop_run(run, SHUTDOWN)
        try:
            assert await d.drain(WAIT), "the stopped run waited for its claim's answer"
            assert not held.ended.is_set()
        finally:
            held.release(lands=True, answers=True)  # the store was slow: the claim is taken

        def ended() -> bool:
            record = sqlite.get(run, 1)
            return record is not None and record.status is not RunStatus.RUNNING

        await until("the run's record to end", ended)
        assert await d.drain(WAIT)
        await d.shutdown(0.0)
        assert not marker.exists()
        record = sqlite.get(run, 1)
        assert record is not None
        assert (record.status, record.reason, record.started_at) == (
            RunStatus.INTERRUPTED,
            SHUTDOWN,
            None,
        )
        assert record.message == "crontask stopped while this run waited; it did not start"
        assert heard == [RunStatus.INTERRUPTED]  # never "started"

    asyncio.run(main())


@pytest.mark.parametrize(("policy", "call"), CLAIMS[:1])
def test_a_claim_that_fails_after_its_run_was_stopped_leaves_the_slot_to_catch_up(
    sqlite: RunStore, tmp_path: Path, policy: str, call: str
) -> None:
    """The answer that comes after the stop is a failure: the claim may not have landed, and
    nothing is written of it here; the slot is left unstarted, for whoever owns the task to
    catch up, and its process never starts. (Under Forbid a failed exclusive claim is made
    again as an ordinary one, which this store takes: the case above.)"""
    held, marker = Held(sqlite), tmp_path / "ran"
    job = _job(marker, policy)
    run = run_id(job.key, T0)

    async def main() -> None:
        d = dispatcher(held, ha=True)
        held.silence(call)
        d.fire(job, T0)
        await until("the claim to be held", held.holding.is_set)
        assert d.stop_run(run, SHUTDOWN)
        try:
            assert await d.drain(WAIT), "the stopped run waited for its claim's answer"
        finally:
            held.release(lands=False)
        await until("the held call to end", held.ended.is_set)
        await until("the slot to be left to catch up", lambda: job.key in d.unstarted)
        assert await d.drain(WAIT)
        await d.shutdown(0.0)
        assert not marker.exists()
        assert sqlite.get(run, 1) is None

    asyncio.run(main())


class Failing(Held):
    """A store whose claims fail with an error that is not the store's (a bug)."""

    def claim_many(self, records: Sequence[RunRecord]) -> list[bool]:
        raise RuntimeError("a claim that fails")

    def claim_exclusive(self, records: Sequence[RunRecord]) -> list[ExclusiveClaim]:
        raise RuntimeError("a claim that fails")


@pytest.mark.parametrize("policy", ["Allow", "Forbid"])
def test_with_replicas_a_slot_whose_claim_fails_is_not_run_unchecked(
    sqlite: RunStore, tmp_path: Path, policy: str
) -> None:
    """Without replicas such a run still runs (nobody else can run its slot); with them, the
    replica that owns the task next catches the slot up, so this one does not run it."""
    failing, marker = Failing(sqlite), tmp_path / "ran"
    job = _job(marker, policy)

    async def main() -> None:
        d = dispatcher(failing, ha=True)
        d.fire(job, T0)
        await until("the slot to be left to catch up", lambda: job.key in d.unstarted)
        assert await d.drain(WAIT)
        await d.shutdown(0.0)
        assert not marker.exists()
        assert sqlite.get(run_id(job.key, T0), 1) is None

    asyncio.run(main())
