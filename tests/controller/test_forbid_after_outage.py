"""Under ``Forbid`` a slot is skipped for a run of its task that is going, or that will start:
not for one whose process has exited while its end record waits for a silent store. A first
attempt waiting for its claim still holds the task, as its run may start at any moment, and
the skip says so. A real SQLite store, behind a switch that holds a write the way a silent
network held PostgreSQL's; real processes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.handover import Handover
from reconciler.controller.lane import ANSWER_WAIT
from reconciler.controller.recorder import Recorder
from reconciler.core.runs import RunRecord, RunStatus, run_id
from reconciler.store import RunStore, open_store, sqlite_url
from reconciler.store.base import ExclusiveClaim
from tests.controller.test_recorder_silent_store import Silent, until
from tests.helpers import definition, local_actions

T0 = datetime(2026, 12, 5, 20, 56, 6, tzinfo=UTC)
OWNER = "a:1:boot"
JOB = definition("job", command={"args": ["true"]}, concurrencyPolicy="Forbid")


class SilentHa(Silent):
    """``Silent``, also for the claims that look for another replica's run (``--ha``)."""

    def claim_exclusive(self, records: Sequence[RunRecord]) -> list[ExclusiveClaim]:
        claimed: list[ExclusiveClaim] = []
        if self._held(
            "claim_exclusive", lambda: claimed.extend(self.store.claim_exclusive(records))
        ):
            return claimed
        return self.store.claim_exclusive(records)


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[RunStore]:
    opened = open_store(sqlite_url(tmp_path / "state"), writer=True)
    yield opened
    opened.close()


def dispatcher(silent: Silent, *, ha: bool = False) -> Dispatcher:
    # Writes are waited for far longer than the tests take: the store stays silent throughout.
    recorder = Recorder(cast(RunStore, silent), retry_initial=0.01, answer_wait=60)
    d = Dispatcher(
        cast(RunStore, silent),
        owner=OWNER,
        clock=lambda: datetime.now(UTC),
        recorder=recorder,
        actions=local_actions(),
    )
    if ha:
        d.handover = Handover(cast(RunStore, silent), OWNER, recorder.call, poll=0.01)
    return d


def stored(store: RunStore, slot: datetime) -> RunRecord:
    record = store.get(run_id(JOB.key, slot))
    assert record is not None, slot
    return record


def test_a_run_that_ended_does_not_hold_its_task_while_its_end_record_waits(
    sqlite: RunStore,
) -> None:
    """205606Z ended at 07.00, its end record held by the silent store: 205608Z was skipped
    ``previous run still running (…205606Z)``."""
    silent = Silent(sqlite)

    async def main() -> None:
        d = dispatcher(silent)
        silent.silence("save_many")
        d.fire(JOB, T0)
        await until("the end record's write to be held", silent.holding.is_set)
        await until("the run to let go of its task", lambda: not d.active(JOB.key))
        following = d.fire(JOB, T0 + timedelta(seconds=2))
        assert following.status is RunStatus.RUNNING, following.message
        silent.release(lands=True, answers=True)
        assert await d.drain(10)
        assert await d.recorder.flush(5)
        await d.shutdown(0)

    asyncio.run(main())
    for slot in (T0, T0 + timedelta(seconds=2)):
        assert stored(sqlite, slot).status is RunStatus.SUCCEEDED


def test_while_the_store_answers_a_run_s_end_is_heard_before_it_leaves_its_task(
    sqlite: RunStore,
) -> None:
    """The status reporter counts on it: a run's final record is heard while the run is still
    among the active ones (else a status would show its last run running and nothing active).
    Only a store slow to take the end record lets the run go first."""
    seen: list[tuple[RunStatus, list[str]]] = []

    async def main() -> None:
        d = dispatcher(Silent(sqlite))
        d.subscribe(lambda r: seen.append((r.status, [a.id for a in d.active(r.task)])))
        d.fire(JOB, T0)
        assert await d.drain(10)
        await d.shutdown(0)

    asyncio.run(main())
    assert seen[-1] == (RunStatus.SUCCEEDED, [run_id(JOB.key, T0)])


@pytest.mark.parametrize("gap", [ANSWER_WAIT / 2, 2.0, 2 * ANSWER_WAIT])
def test_a_first_attempt_waiting_for_its_claim_holds_its_task_and_the_skip_says_so(
    sqlite: RunStore, gap: float
) -> None:
    """``--ha``: a first attempt waits for its claim's answer however late (205610Z). It may
    start at any moment, so a slot that comes meanwhile is skipped (else the two could
    overlap; superseding it instead would start nothing while the store answers slower than
    the task's interval), and the skip's record says what holds it, not that a run is
    running: 205612Z said `previous run still running (…205610Z)`."""
    silent = SilentHa(sqlite)
    soon = T0 + timedelta(seconds=gap)

    async def main() -> None:
        d = dispatcher(silent, ha=True)
        silent.silence("claim_exclusive")
        d.fire(JOB, T0)
        await until("the claim to be held", silent.holding.is_set)
        skipped = d.fire(JOB, soon)
        assert (skipped.status, skipped.reason) == (RunStatus.SKIPPED, "ConcurrencyForbid")
        assert skipped.message == (
            f"previous run not started yet, its claim waiting for the run store "
            f"({run_id(JOB.key, T0)}); policy Forbid"
        )
        silent.release(lands=True, answers=True)
        assert await d.drain(10)
        assert await d.recorder.flush(5)
        await d.shutdown(0)

    asyncio.run(main())
    assert stored(sqlite, T0).status is RunStatus.SUCCEEDED
    assert stored(sqlite, soon).reason == "ConcurrencyForbid"
