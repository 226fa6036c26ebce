"""Claims of several slots that travel together (``Handover``, ``claim_exclusive``) when the
run store's calls close for the stop: each claim hears ``StoreClosed``, as one alone does, and
nothing is logged as an error. The batch was taken for one the store refused: an error line
with a traceback after ``crontask stopped``, each claim then tried again alone."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reconciler.controller.handover import Handover
from reconciler.core.model import ConcurrencyPolicy
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import open_store
from reconciler.store.base import StoreClosed

SLOT = datetime(2026, 11, 26, 12, 1, tzinfo=UTC)
KEYS = ["default/a", "default/b", "default/c"]


def first_attempt(key: str) -> RunRecord:
    return RunRecord(
        id=run_id(key, SLOT),
        task=key,
        scheduled_at=SLOT,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.RUNNING,
        started_at=SLOT + timedelta(seconds=1),
        owner="a:1:a",
    )


def test_claims_sent_together_as_the_store_closes_hear_that_it_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> list[BaseException | str | None]:
        closing = asyncio.Event()
        calls = 0

        async def call(_fn: Any, *_args: Any) -> Any:
            nonlocal calls
            calls += 1
            await closing.wait()  # the first claim is on its way; the others gather
            raise StoreClosed("the run store's threads are closed: crontask is stopping")

        handover = Handover(open_store("memory://"), "a:1:a", call)
        claims = [
            asyncio.ensure_future(
                handover.claim(first_attempt(key), ConcurrencyPolicy.FORBID, "Replaced")
            )
            for key in KEYS
        ]
        while calls < 1:
            await asyncio.sleep(0)
        for _ in range(10):  # every claim handed in behind the first
            await asyncio.sleep(0)
        closing.set()
        return await asyncio.gather(*claims, return_exceptions=True)

    with caplog.at_level(logging.INFO):
        answers = asyncio.run(main())
    assert all(isinstance(a, StoreClosed) for a in answers), answers
    assert [r.message for r in caplog.records if r.levelno >= logging.WARNING] == []
