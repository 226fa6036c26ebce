"""startingDeadlineSeconds and ``Replace``, and what a ``MissedDeadline`` skip says.

A slot decided within its deadline that stops the run going (``Replace``) runs once that run
has ended, however long its kill grace took: crontask's own wait does not count against the
deadline (``LateStarts._waited``, ``_late``), as a CronJob creates its Job as it deletes the old
ones. Before, with a command that ignored SIGTERM and a deadline shorter than the kill grace,
every other slot stopped the run going and was then skipped ``MissedDeadline``: nothing ran.

Every ``MissedDeadline`` message has one form, "not started: Xs after its slot, past
startingDeadlineSeconds=N" (``late_starts.missed_deadline``); a slot refused as it was decided
said "started Xs late" although nothing started.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.controller.dispatch import Dispatcher
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.runner.base import Actions
from reconciler.store import MemoryRunStore
from tests.controller.test_dispatch import SLOT, dispatcher, sh
from tests.controller.test_dispatch_ahead import EPOCH, KEY
from tests.controller.test_dispatch_late import OWNER, Away, claimed_ahead, setup
from tests.controller.test_dispatch_waited import NEXT, Stubborn, replace
from tests.controller.test_policies import until
from tests.helpers import local_actions


def test_a_replacing_run_decided_a_hair_before_its_slot_starts_once_the_old_one_died() -> None:
    """The slot's timer fired a little before the wall clock reached it (the two clocks drift):
    the run is decided ahead and looked at as one (``_late``); its wait for the run it replaces
    (8 s, startingDeadlineSeconds 2) is not counted there either."""

    async def scenario() -> tuple[list[RunRecord], RunRecord | None]:
        job = replace(startingDeadlineSeconds=2)
        store = MemoryRunStore()
        action = Stubborn()
        clock = Away()
        d = Dispatcher(store, owner=OWNER, clock=clock, actions=Actions([action]))
        d.fire(job, EPOCH)
        await until(lambda: len(action.began) == 1)
        clock.jump(15 - 0.05)
        assert d.fire(job, NEXT).started_at == NEXT  # decided ahead: it starts on its slot
        clock.jump(8)
        action.kill.set()
        assert await d.drain(5)
        await d.shutdown(0)
        return action.began, store.get(run_id(KEY, NEXT))

    began, record = asyncio.run(scenario())
    assert [r.scheduled_at for r in began] == [EPOCH, NEXT]
    assert record is not None
    assert (record.status, record.reason) == (RunStatus.SUCCEEDED, None)


def test_a_replacing_command_runs_after_a_kill_grace_longer_than_its_deadline(
    tmp_path: Path,
) -> None:
    """Real processes, the real clock: the run going ignores SIGTERM, so it ends 1.5 s after
    the new slot stopped it (SIGKILL after the kill grace); startingDeadlineSeconds 1. The
    new run starts after it, and runs."""
    ran = tmp_path / "ran"
    first = datetime.now(UTC)
    # The first run holds out through the kill grace; the second ends at once.
    script = (
        f"trap '' TERM; echo $CRONTASK_RUN_ID >> {ran}; "
        f'[ "$CRONTASK_RUN_ID" = {run_id("default/job", first)} ] || exit 0; sleep 30'
    )
    job = sh(script, concurrencyPolicy="Replace", startingDeadlineSeconds=1)
    store = MemoryRunStore()

    async def scenario() -> datetime:
        d = Dispatcher(store, owner=OWNER, actions=local_actions(kill_grace=1.5))
        d.fire(job, first)
        await until(ran.exists, timeout=10)  # its trap is set
        second = datetime.now(UTC)
        assert d.fire(job, second).status is RunStatus.RUNNING
        assert await d.drain(15)
        await d.shutdown(0)
        return second

    second = asyncio.run(scenario())
    old, new = store.get(run_id("default/job", first)), store.get(run_id("default/job", second))
    assert old is not None
    assert new is not None
    assert (old.status, old.reason) == (RunStatus.FAILED, "Replaced")
    assert (new.status, new.exit_code) == (RunStatus.SUCCEEDED, 0)
    assert ran.read_text().split() == [old.id, new.id]


def test_a_slot_refused_as_it_is_decided_says_it_did_not_start() -> None:
    """A catch-up (after a restart) and a scheduled slot, each decided 2.5 s after its slot
    under startingDeadlineSeconds 2: nothing of either started, and their records say so."""
    store = MemoryRunStore()
    job = sh("true", startingDeadlineSeconds=2)
    later = SLOT + timedelta(seconds=10)

    async def scenario() -> list[RunRecord]:
        at_once = dispatcher(store, now=SLOT + timedelta(seconds=2.5))
        caught_up = dispatcher(store, now=later + timedelta(seconds=2.5))
        skips = [at_once.fire(job, SLOT), caught_up.fire(job, later, Trigger.CATCHUP)]
        for d in (at_once, caught_up):
            assert await d.drain(5)
            await d.shutdown(0)
        return skips

    skips = asyncio.run(scenario())
    for skip in skips:
        stored = store.get(skip.id)
        assert stored is not None
        assert (stored.status, stored.reason, stored.started_at) == (
            RunStatus.SKIPPED,
            "MissedDeadline",
            None,
        )
        assert stored.message == "not started: 2.5s after its slot, past startingDeadlineSeconds=2"


def test_a_run_looked_at_again_past_its_deadline_says_it_in_the_same_form() -> None:
    """Decided ahead, then frozen 20 s across its slot (``_late``): the same form, and what
    every run that did not start says after it."""

    async def scenario() -> RunRecord | None:
        d, _, store, job, clock = setup(startingDeadlineSeconds=2)
        slot = await claimed_ahead(d, store, job)
        clock.jump(20)
        assert await d.drain(5)
        await d.shutdown(0)
        return store.get(run_id(KEY, slot))

    record = asyncio.run(scenario())
    assert record is not None
    assert record.reason == "MissedDeadline"
    said = re.fullmatch(
        r"not started: (\d+\.\d)s after its slot, past startingDeadlineSeconds=2",
        record.message or "",
    )
    assert said is not None, record.message
    assert float(said.group(1)) >= 19.8


def test_the_deadline_still_counts_a_replaced_run_of_a_slot_decided_past_it() -> None:
    """The wait not counted is the one after a decision within the deadline: a slot decided
    past it replaces nothing (the run going goes on) and is skipped as it is decided."""

    async def scenario() -> tuple[RunRecord, list[RunRecord], RunRecord | None]:
        job = replace(startingDeadlineSeconds=2)
        store = MemoryRunStore()
        action = Stubborn()
        clock = Away()
        d = Dispatcher(store, owner=OWNER, clock=clock, actions=Actions([action]))
        d.fire(job, EPOCH)
        await until(lambda: len(action.began) == 1)
        clock.jump(15 + 3)
        skip = d.fire(job, NEXT)
        old = d.active(KEY)
        action.kill.set()
        assert await d.drain(5)
        await d.shutdown(0)
        return skip, old, store.get(run_id(KEY, EPOCH))

    skip, going, old = asyncio.run(scenario())
    assert (skip.status, skip.reason) == (RunStatus.SKIPPED, "MissedDeadline")
    assert [r.scheduled_at for r in going] == [EPOCH]  # not stopped
    assert old is not None
    assert old.status is RunStatus.SUCCEEDED
