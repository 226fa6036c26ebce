"""A row another process keeps locked holds back only its own run record.

On PostgreSQL a writer can lock one row of ``runs`` and keep it (``SELECT ... FOR UPDATE`` in a
transaction left open). The record of that run then times out at every try (the run path's
lock wait); the records kept behind it were written one by one, in order, so none of them was
written either until the lock went, and past the buffer's capacity they were dropped.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa

from reconciler.controller.recorder import Recorder
from reconciler.core.runs import RunStatus
from reconciler.store import RunStore, sql
from reconciler.store.sql import SqlRunStore

from ._records import rec

TASK = "ops/nightly-backup"


@pytest.mark.postgres
def test_a_row_locked_for_good_holds_back_only_its_own_record(
    pg_url: str, open_many: Callable[[str], RunStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "WRITE_LOCK_WAIT", timedelta(milliseconds=100))
    store = open_many(pg_url)
    assert isinstance(store, SqlRunStore)
    finals = [rec(TASK, n) for n in range(5)]
    store.claim_many([dataclasses.replace(r, status=RunStatus.RUNNING) for r in finals])

    with store.engine.connect() as other:
        other.execute(sa.text("SELECT 1 FROM runs WHERE id = :id FOR UPDATE"), {"id": finals[0].id})

        async def while_locked() -> Recorder:
            recorder = Recorder(store, retry_initial=0.05, retry_max=0.2)
            for r in finals:  # the first one's row is locked: it waits, and the rest behind it
                await recorder.save(r)
            assert await recorder.flush(1.5) is False
            return recorder

        loop = asyncio.new_event_loop()
        try:
            recorder = loop.run_until_complete(while_locked())
            assert recorder.pending == 1
            statuses = [store.get(r.id).status for r in finals]  # type: ignore[union-attr]
            assert statuses == [RunStatus.RUNNING] + [RunStatus.SUCCEEDED] * 4
            other.rollback()  # the lock goes
            assert loop.run_until_complete(recorder.flush(10))
            loop.run_until_complete(recorder.close(1))
        finally:
            loop.close()
    first = store.get(finals[0].id)
    assert first is not None
    assert first.status is RunStatus.SUCCEEDED
