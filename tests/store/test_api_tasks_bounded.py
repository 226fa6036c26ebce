"""The store of API-owned tasks in PostgreSQL (``--ha``) waits for the database a bounded time:
a call it does not answer is ``StoreUnavailable`` (an API write held its place and its key's
lock for as long as the database was silent). Here the database holds the call with a row
lock another session keeps, as a server that takes the call and does not answer would. The
write given up on goes on, and lands once the lock goes: meanwhile another write of its key
is refused at once (it could land first, and lose to the one given up on)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
import yaml

from reconciler.core.api_tasks import MISSING
from reconciler.store import StoreUnavailable, open_store
from reconciler.store import api_tasks as store_api_tasks
from reconciler.store.api_tasks import SqlApiTasks
from reconciler.store.sql_schema import api_tasks
from tests.helpers import task_doc, wait_for

pytestmark = pytest.mark.postgres

WAIT = 0.5  # the store's wait around the calls meant to hang (5 s in use, and for the rest)


def text(name: str, schedule: str = "* * * * *") -> str:
    return yaml.safe_dump(task_doc(name, schedule=schedule), sort_keys=False)


@pytest.fixture
def store(pg_url: str) -> Iterator[SqlApiTasks]:
    open_store(pg_url).close()
    made = SqlApiTasks.open(pg_url)
    yield made
    made.engine.dispose()


@contextmanager
def hanging(store: SqlApiTasks) -> Iterator[None]:
    """The calls made within wait ``WAIT``: only those meant to hang (the set-up's, a first
    connection included, and the others keep the wait in use: a loaded machine must not give
    them up)."""
    assert store._wait == store_api_tasks.CALL_WAIT
    store._wait = WAIT
    try:
        yield
    finally:
        store._wait = store_api_tasks.CALL_WAIT


def test_a_write_the_database_holds_is_given_up_and_its_key_refused_meanwhile(
    store: SqlApiTasks,
) -> None:
    first = store.write("default/a", text("a"), expect=MISSING)
    store.write("default/b", text("b"), expect=MISSING)
    with store.engine.connect() as holder:
        locking = holder.begin()
        holder.execute(sa.select(api_tasks).where(api_tasks.c.key == "default/a").with_for_update())
        with (
            hanging(store),
            pytest.raises(
                StoreUnavailable, match=r"did not answer within 0\.5s.*may yet be stored"
            ),
        ):
            store.write("default/a", text("a", "@hourly"), expect=first)
        with pytest.raises(StoreUnavailable, match="earlier write of default/a still waits"):
            store.remove("default/a")
        store.write("default/b", text("b", "@hourly"))  # other keys are written as ever
        assert store.load(["default/b"]) == {"default/b": text("b", "@hourly")}
        locking.rollback()
    # The write given up on lands once the database answers it; then the key is free again.
    wait_for("the late write", lambda: store.load(["default/a"])["default/a"] != text("a"), 10)
    assert store.load(["default/a"]) == {"default/a": text("a", "@hourly")}
    wait_for("the key to be free", lambda: _removed(store, "default/a"), 10)


def test_calls_given_up_on_are_bounded(store: SqlApiTasks) -> None:
    for i in range(4):
        store.write(f"default/t{i}", text(f"t{i}"), expect=MISSING)
    with store.engine.connect() as holder:
        locking = holder.begin()
        holder.execute(sa.select(api_tasks).with_for_update())
        for i in range(4):  # each holds a thread and a connection until the lock goes
            with hanging(store), pytest.raises(StoreUnavailable, match="did not answer"):
                store.write(f"default/t{i}", text(f"t{i}", "@hourly"))
        with pytest.raises(StoreUnavailable, match="4 calls still wait for the database"):
            store.versions()  # refused at once, without a call to the database
        locking.rollback()
    wait_for("the late calls to end", lambda: _answers(store), 10)
    assert set(store.versions()) == {f"default/t{i}" for i in range(4)}


def _removed(store: SqlApiTasks, key: str) -> bool:
    try:
        store.remove(key)
    except StoreUnavailable:
        return False
    return True


def _answers(store: SqlApiTasks) -> bool:
    try:
        store.versions()
    except StoreUnavailable:
        return False
    return True
