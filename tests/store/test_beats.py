"""Heartbeats in the run store (``beat``, ``beats``, ``forget_beats``) and the runs marked when
one stopped (``untold``, ``take_untold``), on every back end."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
import sqlalchemy as sa

from reconciler.core.runs import UNTOLD, RunStatus, run_id
from reconciler.store import RunStore
from reconciler.store.base import INTERRUPTED_MESSAGE
from reconciler.store.sql import SqlRunStore
from reconciler.store.sql_schema import instances

from ._records import T0, rec

A, B = "host-a:7:1:boot:4026531836:aa", "host-b:7:1:boot:4026531836:bb"


def test_each_beat_changes_the_instances_mark(store: RunStore) -> None:
    store.beat(A, 30.0, T0)
    first = store.beats()
    store.beat(A, 30.0, T0 + timedelta(microseconds=1))
    second = store.beats()
    assert first.keys() == second.keys() == {A}
    assert first[A][0] != second[A][0]
    assert second[A][1] == 30.0


def test_each_instance_has_its_own_row_and_lease(store: RunStore) -> None:
    store.beat(A, 10.0, T0)
    store.beat(B, 60.0, T0)
    assert {i: lease for i, (_, lease) in store.beats().items()} == {A: 10.0, B: 60.0}


def test_forgotten_beats_are_read_no_more(store: RunStore) -> None:
    store.beat(A, 1.0, T0)
    store.beat(B, 1.0, T0)
    store.forget_beats([A])
    store.forget_beats([])
    assert store.beats().keys() == {B}


@pytest.mark.parametrize(
    ("renewed", "lease"),
    [
        ("infinity", "30"),  # PostgreSQL: a timestamptz that is no datetime
        ("'the day after tomorrow'", "30"),  # SQLite keeps any text in any column
        ("now()", "'NaN'"),
        ("now()", "'a while'"),
    ],
)
def test_a_row_any_client_wrote_reads_back(sql_store: RunStore, renewed: str, lease: str) -> None:
    """Whatever a client of the database put in a row, reading the beats does not fail: one
    such row would stop every crontask's judgement (and, read at start-up, its start)."""
    assert isinstance(sql_store, SqlRunStore)
    sqlite = sql_store.engine.dialect.name == "sqlite"
    renewed = {"infinity": "'infinity'", "now()": "CURRENT_TIMESTAMP"}.get(renewed, renewed)
    # The test's own literals, as a client writing SQL by hand would put them.
    sql = f"INSERT INTO instances VALUES ('{A}', {renewed}, {lease})"  # noqa: S608
    try:
        with sql_store.engine.begin() as conn:
            conn.execute(sa.text(sql))
    except sa.exc.DBAPIError:
        # Types PostgreSQL checks: no text where a time or a number goes ('infinity' and 'NaN'
        # are a timestamptz and a float there); SQLite takes all.
        assert not sqlite
        return
    sql_store.beat(B, 30.0, T0)
    beats = sql_store.beats()
    assert beats.keys() == {A, B}
    assert isinstance(beats[A][0], str)
    assert math.isnan(beats[A][1]) or beats[A][1] == 30.0


def test_the_sql_row_is_one_per_instance(sql_store: RunStore) -> None:
    assert isinstance(sql_store, SqlRunStore)
    sql_store.beat(A, 30.0, T0)
    sql_store.beat(A, 30.0, T0 + timedelta(seconds=5))
    with sql_store.engine.connect() as conn:
        rows = conn.execute(sa.select(instances.c.id, instances.c.renewed)).all()
    assert rows == [(A, T0 + timedelta(seconds=5))]


def test_runs_marked_untold_are_read_and_taken_once(store: RunStore) -> None:
    """``untold``/``take_untold`` (``controller.heartbeat``): a crontask that declares the task
    takes the note off, and one caller only gets each record."""
    dead = "host-c:7:1:boot:4026531836:cc"
    for task in ("team/a", "team/b", "team/c"):
        store.claim(rec(task, 0, RunStatus.RUNNING, owner=dead))
    store.claim(rec("team/d", 0, RunStatus.RUNNING, owner=B))
    marked_at = T0 + timedelta(hours=1)
    store.mark_interrupted([dead], marked_at, keep=[run_id("team/c", T0)], note=UNTOLD)
    store.mark_interrupted([B], marked_at)  # told by the crontask that marked it
    assert store.untold(marked_at + timedelta(seconds=1)) == []
    found = store.untold(marked_at)
    assert [r.task for r in found] == ["team/a", "team/b"]
    assert all(r.message is not None and r.message.endswith(UNTOLD) for r in found)

    taken = store.take_untold([run_id("team/a", T0), run_id("team/c", T0), run_id("team/d", T0)])
    assert [r.task for r in taken] == ["team/a"]
    assert taken[0].message == INTERRUPTED_MESSAGE.format(owner=dead)
    assert taken[0].status is RunStatus.INTERRUPTED
    assert store.take_untold([run_id("team/a", T0)]) == []  # taken already
    assert store.take_untold([]) == []
    assert [r.task for r in store.untold(marked_at)] == ["team/b"]
    stored = store.get(run_id("team/a", T0))
    assert stored is not None
    assert stored.message == taken[0].message


def test_runs_marked_untold_are_read_page_by_page(store: RunStore) -> None:
    """Marked together, they share their end: a page goes on after the last one's key."""
    dead = "host-c:7:1:boot:4026531836:cc"
    for task in ("team/a", "team/b", "team/c"):
        store.claim(rec(task, 0, RunStatus.RUNNING, owner=dead))
    store.mark_interrupted([dead], T0, note=UNTOLD)
    first, *rest = store.untold(T0)
    assert first.finished_at is not None
    after = store.untold(T0, (first.finished_at, first.id, first.attempt))
    assert [r.id for r in after] == [r.id for r in rest]
    last = after[-1]
    assert last.finished_at is not None
    assert store.untold(T0, (last.finished_at, last.id, last.attempt)) == []
