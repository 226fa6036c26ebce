"""Two crontasks without ``--ha`` on one run store, both declaring a task: each slot still runs
once (the store refuses the second claim), but each keeps the concurrency policy for its own
runs only, so under Forbid their runs overlap. The one whose claim is refused says so, as a
warning, at most every ``SHARED_TOLD_EVERY``; it logged an info line per slot, which read like
the replicas' ordinary sharing of the work. With replicas (``--ha``) it stays that info line."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.controller import claims
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.handover import Handover
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import MemoryRunStore
from tests.controller.test_policies import until
from tests.helpers import definition, local_actions

SLOT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
JOB = definition("job", command={"args": ["true"]})
WARNED = "slot already claimed by another crontask on this run store"


def claimed_by_other(store: MemoryRunStore, slot: datetime) -> None:
    store.claim(
        RunRecord(
            id=run_id("default/job", slot),
            task="default/job",
            scheduled_at=slot,
            trigger=Trigger.SCHEDULE,
            status=RunStatus.RUNNING,
            started_at=slot,
            owner="other-host:7:xyz",
        )
    )


def fire_claimed_slots(store: MemoryRunStore, slots: list[datetime], *, ha: bool) -> None:
    async def scenario() -> None:
        d = Dispatcher(store, owner="host:1:abc", clock=lambda: slots[-1], actions=local_actions())
        if ha:
            d.handover = Handover(store, "host:1:abc", d.recorder.call, poll=0.01)
        for slot in slots:
            d.fire(JOB, slot)
            assert await d.drain(5)
        await d.shutdown(0)

    asyncio.run(scenario())


def said(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_without_replicas_a_slot_claimed_elsewhere_is_warned_of_once_a_while(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryRunStore()
    slots = [SLOT + timedelta(minutes=n) for n in range(3)]
    for slot in slots:
        claimed_by_other(store, slot)
    with caplog.at_level(logging.INFO, logger="crontask.runner"):
        fire_claimed_slots(store, slots, ha=False)
    warned = [m for m in said(caplog, logging.WARNING) if m.startswith(WARNED)]
    assert len(warned) == 1, said(caplog, logging.WARNING)
    assert "--ha" in warned[0]
    # The slots after it within SHARED_TOLD_EVERY: the info line each, as before.
    told = said(caplog, logging.INFO).count("slot already claimed by another instance")
    assert told == 2
    assert all(store.get(run_id("default/job", s)).owner == "other-host:7:xyz" for s in slots)  # type: ignore[union-attr]


def test_the_warning_comes_again_after_its_interval(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(claims, "SHARED_TOLD_EVERY", 0.0)
    store = MemoryRunStore()
    slots = [SLOT + timedelta(minutes=n) for n in range(2)]
    for slot in slots:
        claimed_by_other(store, slot)
    with caplog.at_level(logging.INFO, logger="crontask.runner"):
        fire_claimed_slots(store, slots, ha=False)
    assert len([m for m in said(caplog, logging.WARNING) if m.startswith(WARNED)]) == 2


def test_with_replicas_a_slot_claimed_elsewhere_is_their_sharing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryRunStore()
    claimed_by_other(store, SLOT)
    with caplog.at_level(logging.INFO, logger="crontask.runner"):
        fire_claimed_slots(store, [SLOT], ha=True)
    assert not [m for m in said(caplog, logging.WARNING) if m.startswith(WARNED)]
    assert "slot already claimed by another instance" in said(caplog, logging.INFO)


def test_a_forbid_skip_that_loses_to_another_crontasks_run_is_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The usual shape of the overlap: this crontask's run still goes, so under Forbid it
    would skip the next slot, but the other crontask, free, ran it: the skip's insert loses,
    and no claim of this one is ever refused."""
    store = MemoryRunStore()
    later = SLOT + timedelta(minutes=1)
    job = definition("job", command={"args": ["sleep", "30"]})

    async def scenario() -> None:
        d = Dispatcher(store, owner="host:1:abc", clock=lambda: later, actions=local_actions())
        d.fire(job, SLOT)
        await until(lambda: bool(d.active("default/job")))
        claimed_by_other(store, later)
        d.fire(job, later)
        await until(lambda: any(m.startswith(WARNED) for m in said(caplog, logging.WARNING)))
        await d.shutdown(0)

    with caplog.at_level(logging.INFO, logger="crontask.runner"):
        asyncio.run(scenario())
    assert store.get(run_id("default/job", later)).owner == "other-host:7:xyz"  # type: ignore[union-attr]
