"""Fault: the SQLite file deleted or replaced under a running store.

Before, the pooled connections wrote on into the unlinked file, then a new connection made a
fresh empty ``runs.db`` (0644) whose every write failed with "no such table", and a restart
began a new, empty history. Now the store is unavailable (the recorder keeps its records, as
in any outage), no file is made, and a file put in its place that is no run store of a
schema this crontask runs on is not written to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.controller.recorder import Recorder
from reconciler.core.runs import RunStatus
from reconciler.store import StoreUnavailable, open_store, sqlite_url
from reconciler.store.sql import SqlRunStore
from tests.store._records import rec


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def store(state: Path) -> Iterator[SqlRunStore]:
    opened = open_store(sqlite_url(state))
    assert isinstance(opened, SqlRunStore)
    # Connections in the pool, open on the file: what went on writing into the unlinked one.
    opened.claim(rec(at=0, status=RunStatus.RUNNING))
    assert opened.get(rec(at=0).id) is not None
    yield opened
    opened.close()


def _remove(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)


def test_a_deleted_file_is_the_store_unavailable_and_no_new_file_is_made(
    store: SqlRunStore, state: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = state / "runs.db"
    _remove(db)
    with caplog.at_level(logging.ERROR, logger="crontask.store"):
        for _ in range(3):  # every pooled connection, and the new ones after them
            with pytest.raises(StoreUnavailable, match=r"removed or replaced|unable to open"):
                store.claim_many([rec(at=1, status=RunStatus.RUNNING)])
            with pytest.raises(StoreUnavailable):
                store.get(rec(at=0).id)
    assert not db.exists()
    assert sorted(p.name for p in state.iterdir() if p.name.startswith("runs.db")) == []
    told = [r for r in caplog.records if "removed or replaced" in r.getMessage()]
    assert len(told) == 1  # said once, not at every try
    assert told[0].levelno == logging.ERROR


def test_the_recorder_keeps_its_records_while_the_file_is_gone(
    store: SqlRunStore, state: Path
) -> None:
    db = state / "runs.db"
    _remove(db)

    async def main() -> None:
        recorder = Recorder(store, retry_initial=0.01, retry_max=0.02)
        assert await recorder.claim(rec(at=1, status=RunStatus.RUNNING)) is False
        assert await recorder.save(rec(at=0)) is False
        assert recorder.pending == 2  # kept, not dropped
        assert await recorder.flush(0.1) is False
        assert recorder.dropped == 0
        assert not db.exists()
        await recorder.close(0)

    asyncio.run(main())


def test_a_replaced_file_is_not_written_to(store: SqlRunStore, state: Path) -> None:
    db = state / "runs.db"
    replacement = state / "other.db"
    with contextlib.closing(sqlite3.connect(replacement)) as other:
        other.execute("CREATE TABLE runs (x)")  # another program's file, or a damaged store
        other.commit()
    replacement.chmod(0o600)
    _remove(db)
    os.replace(replacement, db)  # put in its place (a store is taken: test_sqlite_file_restored)
    before = db.read_bytes()
    for _ in range(3):
        with pytest.raises(StoreUnavailable, match="removed or replaced"):
            store.claim_many([rec(at=1, status=RunStatus.RUNNING)])
    assert db.read_bytes() == before
    assert not db.with_name("runs.db-wal").exists()


def test_the_file_left_in_place_is_used_as_ever(store: SqlRunStore) -> None:
    assert store.claim_many([rec(at=1, status=RunStatus.RUNNING)]) == [True]
    store.engine.dispose()  # new connections open the same file, mode=rw
    assert store.claim_many([rec(at=1, status=RunStatus.RUNNING)]) == [False]
    assert store.get(rec(at=1).id) is not None
