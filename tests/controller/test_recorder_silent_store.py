"""A run store that does not answer (PostgreSQL behind a network gone silent: no refusal, no
reset, each call held until libpq's socket settings give up) is waited for no longer than a
lock is: a claim or a record waits ``answer_wait``, then hears what an outage would tell it.
The silent write is not abandoned: nothing is written before it ends, so a record that lands
late is not written over its newer state. A real SQLite store, behind a switch that holds its
next write the way the silent network held PostgreSQL's."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.recorder import Recorder
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import RunStore, open_store, sqlite_url
from reconciler.store.base import StoreUnavailable
from tests.helpers import definition, local_actions

T0 = datetime(2026, 12, 4, 12, tzinfo=UTC)
WAIT = 0.05  # the tests' answer_wait


class Silent:
    """A real store whose next ``claim_many`` or ``save_many`` (``silence(kind)``) is held
    until ``release``; then the write lands or not (``lands``: the statement reached the server
    before the network went silent), and the call fails as libpq's does."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self._kind: str | None = None
        self.holding = threading.Event()  # the silenced call has come, and waits
        self._released = threading.Event()
        self._lands = self._answers = False

    def silence(self, kind: str) -> None:
        self._kind = kind

    def release(self, *, lands: bool, answers: bool = False) -> None:
        """``answers``: the store was only slow, and the call returns what it wrote."""
        self._lands, self._answers = lands or answers, answers
        self._released.set()

    def _held(self, kind: str, write: Callable[[], object]) -> bool:
        """True if the call is done (written, answered); raises if it fails."""
        if self._kind != kind:
            return False
        self._kind = None
        self.holding.set()
        self._released.wait(30)
        if self._lands:
            write()
        if self._answers:
            return True
        raise StoreUnavailable("server closed the connection unexpectedly")

    def claim_many(self, records: Sequence[RunRecord]) -> list[bool]:
        claimed: list[bool] = []
        if self._held("claim_many", lambda: claimed.extend(self.store.claim_many(records))):
            return claimed
        return self.store.claim_many(records)

    def save_many(self, records: Sequence[RunRecord]) -> None:
        if not self._held("save_many", lambda: self.store.save_many(records)):
            self.store.save_many(records)

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[RunStore]:
    opened = open_store(sqlite_url(tmp_path / "state"), writer=True)
    yield opened
    opened.close()


def mine(minute: int, status: RunStatus = RunStatus.RUNNING, **fields: object) -> RunRecord:
    at = T0 + timedelta(minutes=minute)
    record = RunRecord(
        run_id("default/job", at), "default/job", at, Trigger.SCHEDULE, status, started_at=at
    )
    return dataclasses.replace(record, owner="a:1:boot", **fields)  # type: ignore[arg-type]


async def until(what: str, condition: Callable[[], object], timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def recorder_of(silent: Silent) -> Recorder:
    return Recorder(cast(RunStore, silent), retry_initial=0.01, answer_wait=WAIT)


def test_a_claim_the_store_does_not_answer_runs_anyway_and_waits_behind_nothing(
    sqlite: RunStore,
) -> None:
    silent = Silent(sqlite)

    async def main() -> None:
        recorder = recorder_of(silent)
        silent.silence("claim_many")
        assert await recorder.claim(mine(0)) is False  # not answered in time: run anyway
        assert silent.holding.is_set()
        # While that write is out (it is never released here), a claim does not queue
        # behind it: it is answered, and not by the store.
        assert await asyncio.wait_for(recorder.claim(mine(1)), 5) is False
        assert silent.holding.is_set()
        assert await recorder.save(mine(0, RunStatus.SUCCEEDED)) is False
        # Nothing is written while the silent write is out.
        assert await recorder.flush(0.2) is False
        assert sqlite.get(mine(0).id) is None
        assert sqlite.get(mine(1).id) is None
        silent.release(lands=False)
        assert await recorder.flush(5)
        await recorder.close(1)

    asyncio.run(main())
    first, second = sqlite.get(mine(0).id), sqlite.get(mine(1).id)
    assert first is not None
    assert second is not None
    assert (first.status, second.status) == (RunStatus.SUCCEEDED, RunStatus.RUNNING)


def test_a_claim_not_to_be_kept_waits_for_the_store_however_late(sqlite: RunStore) -> None:
    """Under --ha a slot whose claim is not answered does not run: were that claim taken after
    all, once answered False, the slot would be ``running`` for good and never run. So a claim
    not to be kept that was sent waits for the store's own answer."""
    silent = Silent(sqlite)

    async def main() -> None:
        recorder = recorder_of(silent)
        silent.silence("claim_many")
        claimed = recorder.claim_soon(mine(0), keep=False)
        await until("the claim's write to be held", silent.holding.is_set)
        # A claim to keep, made meanwhile, hears the outage once the wait is over...
        assert await asyncio.wait_for(recorder.claim(mine(1)), 5) is False
        assert not claimed.done()  # ...this one does not
        silent.release(lands=True, answers=True)  # slow, not gone: it was taken
        assert await asyncio.wait_for(claimed, 5) is True
        assert await recorder.flush(5)
        await recorder.close(1)

    asyncio.run(main())
    for minute in (0, 1):
        held = sqlite.get(mine(minute).id)
        assert held is not None
        assert (held.status, held.owner) == (RunStatus.RUNNING, "a:1:boot")


def test_a_record_that_lands_late_is_not_written_over_its_newer_state(
    sqlite: RunStore,
) -> None:
    silent = Silent(sqlite)

    async def main() -> None:
        recorder = recorder_of(silent)
        assert await recorder.claim(mine(0))
        silent.silence("save_many")
        assert await recorder.save(mine(0, message="job default/job-1 created")) is False
        assert await recorder.save(mine(0, RunStatus.SUCCEEDED)) is False
        assert await recorder.flush(0.2) is False  # the newer state waits for the silent write
        silent.release(lands=True)  # the older state reached the server after all
        assert await recorder.flush(5)
        await recorder.close(1)

    asyncio.run(main())
    held = sqlite.get(mine(0).id)
    assert held is not None
    assert held.status is RunStatus.SUCCEEDED


def test_a_run_whose_end_record_the_store_does_not_answer_no_longer_holds_its_task(
    sqlite: RunStore,
) -> None:
    """Under Forbid the task's next slot runs: the run before it ended, whatever its record's
    write is waiting for (it was the reason given for skipping every slot of a silence)."""
    silent = Silent(sqlite)
    job = definition("job", command={"args": ["true"]}, concurrencyPolicy="Forbid")

    async def main() -> None:
        recorder = recorder_of(silent)
        d = Dispatcher(
            cast(RunStore, silent),
            owner="a:1:boot",
            clock=lambda: T0 + timedelta(minutes=1),
            recorder=recorder,
            actions=local_actions(),
        )
        silent.silence("save_many")
        d.fire(job, T0)
        await until("the end record's write to be held", silent.holding.is_set)
        await until("the run to end for its task", lambda: not d.active(job.key))
        d.fire(job, T0 + timedelta(minutes=1))
        assert await d.drain(10)
        silent.release(lands=False)
        assert await recorder.flush(5)
        await d.shutdown(0)

    asyncio.run(main())
    for slot in (T0, T0 + timedelta(minutes=1)):
        held = sqlite.get(run_id(job.key, slot))
        assert held is not None
        assert held.status is RunStatus.SUCCEEDED, held.reason
