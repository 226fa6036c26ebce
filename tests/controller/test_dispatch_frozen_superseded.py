"""A process frozen (SIGSTOP, a frozen VM) after a slot was decided and claimed ahead of it
(``Dispatcher.due``) and before it started, for longer than the task's interval: on resuming,
the scheduler hands over the newest slot due. Only that one runs: the old one, which never
started, is recorded ``Superseded`` and does not start afterwards, rather than take the
newest slot's place (``ConcurrencyForbid``) and start late itself, or miss its deadline while
the newest is skipped for it (``RunExecution.supersede_ahead``).

The frozen process is the loop held in ``time.sleep`` between the claim and the slot, and
``fire`` called as the loop resumes, before anything else runs: what the scheduler does
first on SIGCONT. The wall clock (``Away``) jumps on with it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import pytest

from reconciler.controller import late_starts
from reconciler.controller.dispatch import Dispatcher
from reconciler.core.desired import Definition
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.runner.base import Actions
from reconciler.store import MemoryRunStore
from tests.controller.test_dispatch_ahead import EPOCH, KEY
from tests.controller.test_dispatch_late import Away, Spawning, setup
from tests.helpers import definition

# How far ahead of its slot the old run is claimed: time for a loaded machine's loop to take
# it to its wait for the instant before the freeze begins (``AHEAD_MAX`` is 1 s).
AHEAD = 0.9


async def claimed_ahead(d: Dispatcher, store: MemoryRunStore, job: Definition) -> datetime:
    """A slot ``AHEAD`` s ahead, handed over now: decided, its claim in the store, and its
    answer on the loop. The row is in the store a moment before the loop has the answer (the
    store's thread hands it over after): a freeze in between left the claim unanswered, and a
    run whose claim is unanswered is not one that was away (it was replaced, not superseded:
    seen once in CI under load)."""
    slot = EPOCH + timedelta(seconds=AHEAD)
    d.due(job, slot)
    give_up = time.monotonic() + 5
    while store.get(run_id(KEY, slot)) is None or not _answered(d):
        assert time.monotonic() < give_up, "the claim never reached the store and the loop"
        await asyncio.sleep(0.005)
    return slot


def _answered(d: Dispatcher) -> bool:
    """Whether the loop has the answer of each run's claim. A run's task takes the claim out
    of ``claim`` as it begins to await it (``claiming``, until the answer wakes it): a claim
    gone from ``claim`` is not an answered one (under load the freeze began there, the row
    already in the store: the old run then started, or was replaced, not superseded)."""
    runs = d._active.get(KEY, {}).values()
    return bool(runs) and all(not a.claiming and (a.claim is None or a.claim.done()) for a in runs)


def freeze_past(clock: Away, slot: datetime, seconds: float) -> None:
    """The whole loop away (``time.sleep``) from now until ``seconds`` past ``slot`` on its
    own clock, which starts before the slot: the run decided ahead has not begun."""
    loop = asyncio.get_running_loop()
    instant = loop.time() + (slot - clock()).total_seconds()
    assert instant > loop.time(), "the loop took the whole hand-over time: no freeze before"
    time.sleep(instant + seconds - loop.time())


def frozen(jump: float, **spec: Any) -> tuple[dict[str, RunRecord | None], list[str], str]:
    """Claim a slot ahead, freeze the loop across it, jump the wall clock ``jump`` s on, and
    hand over the slot 1 s before the present (the newest due). The records of both slots,
    the runs that began, and the newest slot's trigger as fired."""

    async def scenario() -> tuple[dict[str, RunRecord | None], list[str], str]:
        d, action, store, job, clock = setup(**spec)
        old = await claimed_ahead(d, store, job)
        freeze_past(clock, old, 0.1)  # frozen across the old slot's instant
        clock.jump(jump)
        newest: datetime = clock() - timedelta(seconds=1)
        fired = d.fire(job, newest)  # first thing on resuming, as the scheduler does
        assert await d.drain(5)
        await d.shutdown(0)
        records = {"old": store.get(run_id(KEY, old)), "newest": store.get(run_id(KEY, newest))}
        names = {run_id(KEY, old): "old", run_id(KEY, newest): "newest"}
        return records, [names[b.run] for b in action.began], str(fired.trigger)

    return asyncio.run(scenario())


def _superseded(record: RunRecord | None) -> None:
    assert record is not None
    assert (record.status, record.reason, record.started_at) == (
        RunStatus.SKIPPED,
        "Superseded",
        None,
    )
    assert "a later slot" in (record.message or "")
    assert "it did not start" in (record.message or "")


def _ran(record: RunRecord | None) -> None:
    assert record is not None
    assert record.status is RunStatus.SUCCEEDED


def test_the_newest_slot_runs_and_the_one_claimed_before_the_freeze_is_superseded() -> None:
    """No deadline, Forbid: the old slot does not start late, and the newest is not skipped
    for a run that never started."""
    records, began, trigger = frozen(15)
    assert began == ["newest"]
    _superseded(records["old"])
    _ran(records["newest"])
    assert trigger == str(Trigger.SCHEDULE)


def test_with_a_deadline_the_newest_slot_within_it_runs() -> None:
    """startingDeadlineSeconds 5, frozen 15 s: the old slot is past its deadline, the newest
    (1 s ago) is not; it runs, rather than be skipped for the old one."""
    records, began, _ = frozen(15, startingDeadlineSeconds=5)
    assert began == ["newest"]
    _superseded(records["old"])
    _ran(records["newest"])


def test_under_replace_the_old_slot_is_superseded_not_replaced() -> None:
    records, began, _ = frozen(15, concurrencyPolicy="Replace")
    assert began == ["newest"]
    _superseded(records["old"])


class _Noted(Spawning):
    """``Spawning``, noting each attempt it makes: the old run's wait is under way."""

    def __init__(self) -> None:
        super().__init__()
        self.made = 0

    def attempt(self, definition: Definition, record: RunRecord) -> Any:
        self.made += 1
        return super().attempt(definition, record)


def frozen_waiting_itself(
    freeze: float, **spec: Any
) -> tuple[dict[str, RunRecord | None], int, str]:
    """As ``frozen``, the old run's attempt waiting for its instant itself (``StartsAt``, a
    command's spawner thread) when the loop freezes, until ``freeze`` s past its slot. The
    records, how many attempts began, and the reason of the newest slot's record as ``fire``
    returned it."""

    async def scenario() -> tuple[dict[str, RunRecord | None], int, str]:
        d, _, store, job, clock = setup(**spec)
        action = _Noted()
        d.actions = Actions([action])
        old = await claimed_ahead(d, store, job)
        while not action.made:  # its wait for the instant has begun
            await asyncio.sleep(0.005)
        freeze_past(clock, old, freeze)
        newest: datetime = clock() - timedelta(seconds=0.1)
        fired = d.fire(job, newest)
        assert await d.drain(5)
        await d.shutdown(0)
        records = {"old": store.get(run_id(KEY, old)), "newest": store.get(run_id(KEY, newest))}
        return records, len(action.began), str(fired.reason)

    return asyncio.run(scenario())


def test_an_attempt_waiting_itself_past_its_patience_is_superseded() -> None:
    """startingDeadlineSeconds 1: its own wait starts nothing 1 s past the instant (a
    command's spawner thread finds it too late), so the stop races nothing."""
    records, began, _ = frozen_waiting_itself(1.5, startingDeadlineSeconds=1)
    assert began == 1
    _superseded(records["old"])
    _ran(records["newest"])


def test_without_a_deadline_the_old_slot_found_too_late_is_superseded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No deadline: its own wait gives up ``AWAY_AFTER`` past the instant (0.5 s here, 10 s
    in crontask), and the newest slot, handed over first as the loop resumes, runs."""
    monkeypatch.setattr(late_starts, "AWAY_AFTER", 0.5)
    records, began, _ = frozen_waiting_itself(1.2)
    assert began == 1
    _superseded(records["old"])
    _ran(records["newest"])


def test_an_attempt_its_own_wait_may_be_starting_is_left_to_start() -> None:
    """Frozen less than its patience (no deadline: 10 s): a command's spawner thread may be
    starting it as the process resumes, off the loop; a stop then could kill a process just
    started. It runs, a little late, and the newest slot is skipped for it (Forbid): the
    limit of this rule, a run late by less than ``AWAY_AFTER``, as a busy machine's."""
    records, began, reason = frozen_waiting_itself(1.2)
    assert began == 1
    _ran(records["old"])
    assert reason == "ConcurrencyForbid"


def test_a_later_slot_during_the_late_look_at_the_store_still_supersedes() -> None:
    """The old run's own wait found it too late first, and the loop's look again reads the
    store (``_looked_again``): the newest slot is handed over during that read. The old run
    does not start after the read, though its look began before the stop."""

    async def scenario() -> tuple[dict[str, RunRecord | None], int]:
        d, _, store, job, clock = setup()
        action = _Noted()
        d.actions = Actions([action])
        old = await claimed_ahead(d, store, job)
        while not action.made:  # its wait for the instant has begun
            await asyncio.sleep(0.005)
        reading, release = threading.Event(), threading.Event()
        get = store.get

        def slow(run: str, attempt: int | None = None) -> RunRecord | None:
            reading.set()
            release.wait(5)
            return get(run, attempt)

        store.get = slow  # type: ignore[method-assign,assignment]
        freeze_past(clock, old, 1.0)  # past its patience (0.5 s): its wait gives up
        give_up = time.monotonic() + 5
        while not reading.is_set():
            assert time.monotonic() < give_up, "the late look never read the store"
            await asyncio.sleep(0.005)
        newest: datetime = clock() - timedelta(seconds=0.1)
        d.fire(job, newest)
        release.set()
        assert await d.drain(5)
        await d.shutdown(0)
        records = {"old": store.get(run_id(KEY, old)), "newest": store.get(run_id(KEY, newest))}
        return records, len(action.began)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(late_starts, "AWAY_AFTER", 0.5)
        records, began = asyncio.run(scenario())
    assert began == 1
    _superseded(records["old"])
    _ran(records["newest"])


class _HeldClaims(MemoryRunStore):
    """A store whose claims wait until released (a lock wait, a loaded database): the
    process is not away, its claim is slow."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.released = threading.Event(), threading.Event()

    def claim_many(self, records: Any) -> Any:
        self.entered.set()
        assert self.released.wait(10)
        return super().claim_many(records)


@pytest.mark.parametrize("policy", ["Allow", "Forbid"])
def test_a_run_behind_a_slow_claim_is_not_superseded_by_the_next_slot(policy: str) -> None:
    """A slot handed over ahead whose claim the store holds past the next slot's hand-over:
    the process was never away, so the first run is not Superseded; it starts once claimed
    (under Allow the next one runs too; under Forbid the next is skipped for it)."""
    store = _HeldClaims()

    async def scenario() -> tuple[RunRecord | None, RunRecord | None]:
        clock = Away()
        action = Spawning()
        d = Dispatcher(store, owner="crontask-1", clock=clock, actions=Actions([action]))
        job = definition("job", command={"args": ["true"]}, concurrencyPolicy=policy)
        first = EPOCH + timedelta(seconds=0.05)
        d.due(job, first)  # handed 50 ms ahead, as the scheduler does
        assert await asyncio.to_thread(store.entered.wait, 10)
        clock.jump(1.0)  # the next slot of an every-second task comes, 50 ms ahead
        d.due(job, first + timedelta(seconds=1))
        store.released.set()
        assert await d.drain(10)
        await d.shutdown(0)
        return (
            store.get(run_id(KEY, first)),
            store.get(run_id(KEY, first + timedelta(seconds=1))),
        )

    old, new = asyncio.run(scenario())
    assert old is not None
    assert old.status is RunStatus.SUCCEEDED
    assert new is not None
    assert (new.status is RunStatus.SUCCEEDED) == (policy == "Allow")
