"""Heartbeats in the run store (``beat``, ``lapsed``, ``forget_beats``), on every back end."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
import sqlalchemy as sa

from reconciler.store import RunStore
from reconciler.store.base import LEASE_MAX_SECONDS
from reconciler.store.sql import SqlRunStore
from reconciler.store.sql_schema import instances

from ._records import T0

A, B = "host-a:7:1:boot:4026531836:aa", "host-b:7:1:boot:4026531836:bb"


def test_a_beat_lapses_once_its_lease_has_passed(store: RunStore) -> None:
    store.beat(A, 30.0, T0)
    assert store.lapsed(T0 + timedelta(seconds=30), [A]) == set()
    assert store.lapsed(T0 + timedelta(seconds=30.001), [A]) == {A}


def test_a_new_beat_renews_the_lease(store: RunStore) -> None:
    store.beat(A, 30.0, T0)
    store.beat(A, 30.0, T0 + timedelta(seconds=25))
    assert store.lapsed(T0 + timedelta(seconds=40)) == set()


def test_only_instances_that_beat_are_judged(store: RunStore) -> None:
    store.beat(A, 1.0, T0)
    later = T0 + timedelta(hours=1)
    assert store.lapsed(later, [A, B]) == {A}
    assert store.lapsed(later) == {A}
    assert store.lapsed(later, []) == set()


def test_each_beat_has_its_own_lease(store: RunStore) -> None:
    store.beat(A, 10.0, T0)
    store.beat(B, 60.0, T0)
    assert store.lapsed(T0 + timedelta(seconds=30)) == {A}


def test_forgotten_beats_are_judged_no_more(store: RunStore) -> None:
    store.beat(A, 1.0, T0)
    store.beat(B, 1.0, T0)
    store.forget_beats([A])
    store.forget_beats([])
    assert store.lapsed(T0 + timedelta(hours=1)) == {B}


@pytest.mark.parametrize("lease", [math.nan, math.inf, -1.0, 1e12])
def test_a_lease_that_is_no_sensible_number_is_the_longest(
    sql_store: RunStore, lease: float
) -> None:
    """Any client of the database may write a row: it cannot keep its runs for ever, nor end
    them at once."""
    assert isinstance(sql_store, SqlRunStore)
    row = {"id": A, "renewed": T0, "lease_seconds": lease}
    try:
        with sql_store.engine.begin() as conn:
            conn.execute(instances.insert().values(row))
    except sa.exc.IntegrityError:
        # SQLite has no NaN: it stores NULL, which the column refuses.
        assert sql_store.engine.dialect.name == "sqlite"
        assert math.isnan(lease)
        return
    assert sql_store.lapsed(T0 + timedelta(seconds=LEASE_MAX_SECONDS)) == set()
    assert sql_store.lapsed(T0 + timedelta(seconds=LEASE_MAX_SECONDS + 1)) == {A}


def test_many_instances_are_asked_about_at_once(store: RunStore) -> None:
    ids = [f"host:{n}:t" for n in range(1200)]
    for n, instance in enumerate(ids):
        store.beat(instance, 1.0 if n % 2 else 1e3, T0)
    assert store.lapsed(T0 + timedelta(seconds=10), ids) == set(ids[1::2])


def test_the_sql_row_is_one_per_instance(sql_store: RunStore) -> None:
    assert isinstance(sql_store, SqlRunStore)
    sql_store.beat(A, 30.0, T0)
    sql_store.beat(A, 30.0, T0 + timedelta(seconds=5))
    with sql_store.engine.connect() as conn:
        rows = conn.execute(sa.select(instances.c.id, instances.c.renewed)).all()
    assert rows == [(A, T0 + timedelta(seconds=5))]
