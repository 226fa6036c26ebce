"""Under ``Forbid`` with ``--ha``, a first attempt whose claim the store holds keeps the latest
slot turned away for it unrecorded, as a catch-up may yet run it (``late_starts.turn_away``).
Its task leaves this replica meanwhile: handed over (``HandedOver``), that slot is let go
unwritten, for the new owner's catch-up to claim (written ``ConcurrencyForbid`` when the claim
is answered, it could land first, and the latest slot would run nowhere); removed
(``TaskRemoved``), nothing will claim it, and it gets its skip. A real SQLite store
behind a wrapper whose claims wait on events; real processes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.handover import Handover
from reconciler.controller.reconcile import account_for_slots
from reconciler.controller.recorder import Recorder
from reconciler.core.plan import Operation, Step
from reconciler.core.runs import RunStatus, Trigger, run_id
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.store import RunStore, open_store, sqlite_url
from tests.controller.test_forbid_after_outage import JOB, T0, SilentHa, dispatcher, stored
from tests.controller.test_forbid_held_claim import SECOND
from tests.controller.test_recorder_silent_store import until
from tests.helpers import local_actions

NEW_OWNER = "b:1:boot"


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[RunStore]:
    opened = open_store(sqlite_url(tmp_path / "state"), writer=True)
    yield opened
    opened.close()


def _new_owner(store: RunStore) -> Dispatcher:
    """Another replica's dispatcher on the same store, with no claim held."""
    recorder = Recorder(store, retry_initial=0.01, answer_wait=60)
    d = Dispatcher(
        store,
        owner=NEW_OWNER,
        clock=lambda: datetime.now(UTC),
        recorder=recorder,
        actions=local_actions(),
    )
    d.handover = Handover(store, NEW_OWNER, recorder.call, poll=0.01)
    return d


def _leaves_while_held(silent: SilentHa, *, handed_over: bool, pass_: bool = True) -> None:
    """T0's claim is held while T0+1 and T0+2 are turned away (T0+2 kept), then the task
    leaves this replica (a pass's REMOVE step; ``pass_`` False: the assignment says so, the
    pass still to come); then the store answers."""

    async def main() -> None:
        d = dispatcher(silent, ha=True)
        silent.silence("claim_exclusive")
        d.fire(JOB, T0)
        await until("the claim to be held", silent.holding.is_set)
        d.fire(JOB, T0 + SECOND)
        d.fire(JOB, T0 + 2 * SECOND)
        d.owns = lambda key: not handed_over
        step = Step(Operation.REMOVE, JOB.key, None, JOB)
        scheduler = MemoryScheduler(lambda k, at: None, T0)
        if pass_:
            account_for_slots(
                [step], scheduler, d, T0 + 3 * SECOND, elsewhere=lambda key: handed_over
            )
        silent.release(lands=True, answers=True)
        assert await d.drain(10)
        assert await d.recorder.flush(5)
        await d.shutdown(0)

    asyncio.run(main())


def test_a_slot_kept_for_a_held_claim_is_the_new_owners_to_run(sqlite: RunStore) -> None:
    """Handed over: T0 does not start (``HandedOver``), T0+1 keeps its Forbid skip, T0+2 is
    left unrecorded, and the new owner's catch-up of it runs."""
    _leaves_while_held(SilentHa(sqlite), handed_over=True)
    held = stored(sqlite, T0)
    assert (held.status, held.reason, held.started_at) == (RunStatus.SKIPPED, "HandedOver", None)
    assert stored(sqlite, T0 + SECOND).reason == "ConcurrencyForbid"
    assert sqlite.get(run_id(JOB.key, T0 + 2 * SECOND)) is None

    async def new_owner() -> None:
        d = _new_owner(sqlite)
        d.fire(JOB, T0 + 2 * SECOND, Trigger.CATCHUP)
        assert await d.drain(10)
        assert await d.recorder.flush(5)
        await d.shutdown(0)

    asyncio.run(new_owner())
    latest = stored(sqlite, T0 + 2 * SECOND)
    assert (latest.status, latest.trigger, latest.owner) == (
        RunStatus.SUCCEEDED,
        Trigger.CATCHUP,
        NEW_OWNER,
    )


def test_a_slot_kept_for_a_removed_task_is_skipped_not_run(sqlite: RunStore) -> None:
    """Removed: nothing runs; T0 is recorded ``TaskRemoved``, and T0+1 and T0+2 keep their
    Forbid skips (no replica will claim T0+2: a task declared again counts from then on)."""
    _leaves_while_held(SilentHa(sqlite), handed_over=False)
    held = stored(sqlite, T0)
    assert (held.status, held.reason, held.started_at) == (RunStatus.SKIPPED, "TaskRemoved", None)
    for slot in (T0 + SECOND, T0 + 2 * SECOND):
        record = stored(sqlite, slot)
        assert (record.status, record.reason) == (RunStatus.SKIPPED, "ConcurrencyForbid")


def test_a_claim_answered_while_the_assignment_says_elsewhere_still_records_the_slot(
    sqlite: RunStore,
) -> None:
    """The assignment moved the task (``owns`` says so) but no pass has acted on it when T0's
    claim is answered: the task may come back before that pass (moved away and back), and no
    pass would then let the slot go or hand it over. T0+2 gets its skip, as without a move,
    never no record."""
    _leaves_while_held(SilentHa(sqlite), handed_over=True, pass_=False)
    for slot in (T0 + SECOND, T0 + 2 * SECOND):
        assert stored(sqlite, slot).reason == "ConcurrencyForbid"
