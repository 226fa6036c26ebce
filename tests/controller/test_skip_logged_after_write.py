""" "slot skipped" is logged once the skip is recorded, and only then: a skip whose insert loses
to a record of the slot another replica wrote first (its run, or its own skip) did not happen
here, and the log says who recorded the slot instead."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.handover import Handover
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import MemoryRunStore
from tests.helpers import definition, local_actions

SLOT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEY = "default/job"
ME = "host:1:me"
OTHER = "host:2:other"


class Seen(logging.Handler):
    """What the store held for the slot when each runner log line was emitted."""

    def __init__(self, store: MemoryRunStore) -> None:
        super().__init__()
        self.store = store
        self.lines: list[tuple[str, dict[str, object], RunRecord | None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", {})
        stored = self.store.get(run_id(KEY, SLOT))
        self.lines.append((record.getMessage(), fields, stored))


def late_slot(store: MemoryRunStore, caplog: pytest.LogCaptureFixture, *, ha: bool = False) -> Seen:
    """The slot, fired 40 s late under startingDeadlineSeconds 30 (a MissedDeadline skip);
    ``ha``: by a replica (without, another record of the slot is another crontask's, which
    ``test_claimed_by_another_crontask`` is about)."""
    seen = Seen(store)
    logger = logging.getLogger("crontask.runner")
    logger.addHandler(seen)
    caplog.set_level(logging.INFO, "crontask.runner")
    job = definition("job", command={"args": ["true"]}, startingDeadlineSeconds=30)

    async def scenario() -> None:
        d = Dispatcher(
            store, owner=ME, clock=lambda: SLOT + timedelta(seconds=40), actions=local_actions()
        )
        if ha:
            d.handover = Handover(store, ME, d.recorder.call, poll=0.01)
        d.fire(job, SLOT)
        assert await d.drain(10)

    try:
        asyncio.run(scenario())
    finally:
        logger.removeHandler(seen)
    return seen


def test_slot_skipped_is_logged_after_the_skip_is_recorded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryRunStore()
    seen = late_slot(store, caplog)
    skipped = [stored for msg, _, stored in seen.lines if msg == "slot skipped"]
    assert len(skipped) == 1
    assert skipped[0] is not None
    assert (skipped[0].status, skipped[0].reason) == (RunStatus.SKIPPED, "MissedDeadline")


def test_a_skip_that_loses_to_another_replicas_record_is_not_logged_as_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryRunStore()
    store.claim(
        RunRecord(
            id=run_id(KEY, SLOT),
            task=KEY,
            scheduled_at=SLOT,
            trigger=Trigger.SCHEDULE,
            status=RunStatus.RUNNING,
            started_at=SLOT,
            owner=OTHER,
        )
    )
    seen = late_slot(store, caplog, ha=True)
    messages = [msg for msg, _, _ in seen.lines]
    assert "slot skipped" not in messages
    (fields,) = [f for msg, f, _ in seen.lines if "another replica recorded it first" in msg]
    assert fields["owner"] == OTHER
    assert fields["status"] == "running"
    stored = store.get(run_id(KEY, SLOT))
    assert stored is not None
    assert (stored.owner, stored.status) == (OTHER, RunStatus.RUNNING)
