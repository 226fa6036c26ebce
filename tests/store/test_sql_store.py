"""What the SQL back end promises beyond the Protocol: connection setup, locking, indexes."""

from __future__ import annotations

import dataclasses
import json
import random
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, exc
from sqlalchemy.engine import make_url

from reconciler.core.runs import LastOutcomes, RunRecord, RunStatus, Trigger
from reconciler.store import (
    DuplicateRun,
    MemoryRunStore,
    RunQuery,
    RunStore,
    StoreUnavailable,
    open_store,
    sql,
    sql_retention,
    sql_schema,
    sql_sqlite_file,
    sql_summaries,
    sqlite_url,
)
from reconciler.store.query import Cursor
from reconciler.store.sql import SqlRunStore
from reconciler.store.sql_errors import RolledBack, translated_errors
from reconciler.store.sql_pages import select_page

from ._records import T0, everything, rec, reference_prune, sort_key


def _sql(store: RunStore) -> SqlRunStore:
    assert isinstance(store, SqlRunStore)
    return store


# -- URLs --------------------------------------------------------------------------------------


def test_sqlite_url_is_runs_db_in_the_state_dir(tmp_path: Path) -> None:
    assert sqlite_url(tmp_path / "state") == f"sqlite:///{tmp_path}/state/runs.db"


def test_memory_url_opens_a_memory_store() -> None:
    store = open_store("memory://")
    assert isinstance(store, MemoryRunStore)
    store.close()


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "mysql://x@y/z", "postgresql+psycopg2://x@y/z"]
)
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"memory|unsupported|psycopg"):
        open_store(url)


# -- SQLite ------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqlRunStore]:
    store = _sql(open_store(sqlite_url(tmp_path / "deep" / "state")))
    yield store
    store.close()


def test_sqlite_file_and_parent_dirs_are_created(tmp_path: Path) -> None:
    store = open_store(sqlite_url(tmp_path / "a" / "b"))
    try:
        assert (tmp_path / "a" / "b" / "runs.db").is_file()
    finally:
        store.close()


def test_an_sqlite_the_store_cannot_work_with_is_refused_at_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Said when the store opens, with what is missing, rather than by the first query that
    needs it (RETURNING for claims, json_each for the last outcomes) long after."""
    with monkeypatch.context() as patched:
        patched.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
        patched.setattr(sqlite3, "sqlite_version", "3.31.1")
        with pytest.raises(ValueError, match=r"SQLite 3\.31\.1 is too old: .* 3\.35\.0 or later"):
            open_store(sqlite_url(tmp_path / "old"))
    # A build without the JSON functions answers json_each as an unknown function.
    absent = "SELECT count(*) FROM json_each_absent('[]')"
    monkeypatch.setattr(sql_sqlite_file, "_JSON_PROBE", absent)
    with pytest.raises(ValueError, match="built without its JSON functions"):
        open_store(sqlite_url(tmp_path / "no-json"))
    assert not (tmp_path / "old").exists()
    assert not (tmp_path / "no-json").exists()


def test_sqlite_connection_settings(sqlite_store: SqlRunStore) -> None:
    with sqlite_store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_sqlite_writes_take_the_write_lock_up_front(sqlite_store: SqlRunStore) -> None:
    """BEGIN IMMEDIATE for writes (they wait in the busy handler instead of failing on a lock
    upgrade), plain deferred BEGIN for reads (which WAL never blocks)."""
    begins: list[str] = []

    def log(*args: object) -> None:
        statement = str(args[2])
        if statement.startswith("BEGIN"):
            begins.append(statement)

    event.listen(sqlite_store.engine, "before_cursor_execute", log)
    sqlite_store.claim(rec(status=RunStatus.RUNNING))
    sqlite_store.complete(rec())
    sqlite_store.get(rec().id)
    sqlite_store.query(RunQuery())
    sqlite_store.mark_interrupted(["x"], T0)
    assert begins == [
        "BEGIN IMMEDIATE",
        "BEGIN IMMEDIATE",
        "BEGIN DEFERRED",
        "BEGIN DEFERRED",
        "BEGIN IMMEDIATE",
    ]


def _hold_write_lock(path: Path, seconds: float) -> tuple[threading.Thread, threading.Event]:
    """Another "process" (a raw sqlite3 connection) holding the write lock for ``seconds``."""
    locked = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            locked.set()
            time.sleep(seconds)
            conn.execute("COMMIT")
        finally:
            conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert locked.wait(10)
    return thread, locked


def test_sqlite_writers_wait_for_each_other_instead_of_failing(tmp_path: Path) -> None:
    store = open_store(sqlite_url(tmp_path))
    try:
        holder, _ = _hold_write_lock(tmp_path / "runs.db", 0.5)
        started = time.monotonic()
        store.claim(rec())
        waited = time.monotonic() - started
        holder.join()
        assert waited >= 0.3
        assert store.get(rec().id) == rec()
        assert store.query(RunQuery()).items == [rec()]  # readers are not blocked in WAL mode
    finally:
        store.close()


def test_a_reader_opens_the_store_without_its_write_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`crontask runs` reads the history of a running crontask: opening the store must not wait
    for, or take, the write lock."""
    monkeypatch.setattr(sql_schema, "SQLITE_BUSY_TIMEOUT", timedelta(milliseconds=100))
    open_store(sqlite_url(tmp_path), writer=True).close()  # the file exists, migrated
    holder, _ = _hold_write_lock(tmp_path / "runs.db", 2.0)
    try:
        reader = open_store(sqlite_url(tmp_path))
        try:
            assert reader.query(RunQuery()).items == []
        finally:
            reader.close()
        # A writer opens too: its warm-up gives up on the lock (test_writer_opens_unwritable).
        open_store(sqlite_url(tmp_path), writer=True).close()
    finally:
        holder.join()


def test_sqlite_lock_held_past_a_runs_lock_wait_is_store_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "WRITE_LOCK_WAIT", timedelta(milliseconds=100))
    store = open_store(sqlite_url(tmp_path))
    try:
        holder, _ = _hold_write_lock(tmp_path / "runs.db", 1.0)
        try:
            with pytest.raises(StoreUnavailable, match="locked"):
                store.claim(rec())
            store.ping()  # reads still work
            assert store.get(rec().id) is None
        finally:
            holder.join()
        store.claim(rec())  # and it recovers once the lock is gone
    finally:
        store.close()


def test_last_outcomes_are_ordered_by_instant_in_the_hour_a_clock_goes_back(
    sql_url: str, open_many: Callable[..., RunStore]
) -> None:
    """PostgreSQL gives times in the session's zone, and two datetimes of one zone compare by
    their wall clocks: in Berlin on 2026-10-25, 00:30 UTC is 02:30 and 01:15 UTC is 02:15. A
    session in that zone must still see the failure at 01:15 UTC as the newer one."""
    if sql_url.startswith("postgresql"):
        url = make_url(sql_url)
        options = f"{url.query['options']} -ctimezone=Europe/Berlin"
        sql_url = url.update_query_dict({"options": options}).render_as_string(False)
    store = open_many(sql_url)
    before = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    after = datetime(2026, 10, 25, 1, 15, tzinfo=UTC)  # 02:15 CET, an hour after it

    def ended(at: datetime, took: float, status: RunStatus) -> RunRecord:
        slot = at - timedelta(minutes=10)
        return rec(at=slot, status=status, started_at=at - timedelta(seconds=took), finished_at=at)

    store.save_many([ended(before, 2, RunStatus.FAILED), ended(after, 3, RunStatus.INTERRUPTED)])
    found = store.last_outcomes(["ops/nightly-backup"])["ops/nightly-backup"]
    assert found == LastOutcomes(None, after, 3.0)
    assert found.failure is not None
    assert found.failure.tzinfo is UTC


def test_unreachable_postgres_is_store_unavailable() -> None:
    # Port 1 on loopback: connection refused at once (nothing needs to be running).
    with pytest.raises(StoreUnavailable):
        open_store("postgresql+psycopg://nobody:x@127.0.0.1:1/nothing")


def test_store_is_unavailable_once_its_database_is_gone(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = open_store(sqlite_url(state))
    try:
        store.ping()
        _sql(store).engine.dispose()
        (state / "runs.db").unlink()
        state.rmdir()
        state.write_text("not a directory any more")  # the path cannot be opened as a database
        with pytest.raises(StoreUnavailable):
            store.ping()
    finally:
        store.close()


# -- both back ends ----------------------------------------------------------------------------


def test_a_writer_finds_its_first_claims_and_saves_compiled(
    sql_url: str, open_many: Callable[..., RunStore]
) -> None:
    """A store opened by the process that runs tasks compiled its writes when it opened (the
    first burst of runs must not pay for it), and that left no row behind."""
    store = _sql(open_many(sql_url, writer=True))
    assert store.query(RunQuery(limit=10)).items == []
    misses: list[str] = []

    def note(conn: object, cursor: object, statement: str, *args: object) -> None:
        context = args[-2]
        if getattr(context, "cache_hit", None) == context.dialect.CACHE_MISS:  # type: ignore[attr-defined]
            misses.append(statement)

    event.listen(store.engine, "after_cursor_execute", note)
    try:
        one, two, three = (rec(f"ns/t{i}", 0) for i in range(3))
        assert store.claim_many([one]) == [True]
        assert store.claim_many([two, three]) == [True, True]
        store.save_many([dataclasses.replace(one, status=RunStatus.SUCCEEDED)])
        store.save_many([dataclasses.replace(r, status=RunStatus.FAILED) for r in (two, three)])
    finally:
        event.remove(store.engine, "after_cursor_execute", note)
    assert misses == []
    assert store.get(one.id) == dataclasses.replace(one, status=RunStatus.SUCCEEDED)


def test_insert_many(sql_store: RunStore) -> None:
    store = _sql(sql_store)
    records = [rec(f"ns/t{i % 3}", i, RunStatus.SUCCEEDED) for i in range(25)]
    assert store.insert_many(records, batch_size=10) == 25
    assert store.query(RunQuery(limit=100)).items == sorted(
        records, key=lambda r: (r.scheduled_at, r.id), reverse=True
    )
    with pytest.raises(DuplicateRun):
        store.insert_many([rec("ns/new", 0), records[0]])
    assert store.get(rec("ns/new", 0).id) is None  # the failed batch was rolled back


def test_store_objects_can_be_shared_between_threads_while_writing(
    sql_url: str, open_many: Callable[[str], RunStore]
) -> None:
    """Writer thread completes while readers query: no errors, no torn records."""
    store = open_many(sql_url)
    for i in range(30):
        store.claim(rec(at=i, status=RunStatus.RUNNING))
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                for r in store.query(RunQuery(limit=100)).items:
                    assert (r.status is RunStatus.RUNNING) == (r.finished_at is None)
        except BaseException as e:
            errors.append(e)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    for i in range(30):
        store.complete(rec(at=i, status=RunStatus.SUCCEEDED))
    stop.set()
    for t in readers:
        t.join()
    assert not errors
    assert store.running() == []


def _plan(store: SqlRunStore, q: RunQuery) -> str:
    stmt = select_page(q)
    compiled = stmt.compile(dialect=store.engine.dialect, compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN QUERY PLAN " if store.engine.dialect.name == "sqlite" else "EXPLAIN "
    with store.engine.connect() as conn:
        return "\n".join(str(row[-1]) for row in conn.exec_driver_sql(prefix + str(compiled)))


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (RunQuery(task="ns/t3"), "ix_runs_task_scheduled"),
        (RunQuery(status=RunStatus.FAILED, since=T0 + timedelta(minutes=9_940)), "ix_runs_status"),
        (RunQuery(), "ix_runs_scheduled"),
        (
            RunQuery(
                task="ns/t3", cursor=Cursor(T0 + timedelta(minutes=50), "ns.t3.x", 1).encode()
            ),
            "ix_runs_task_scheduled",
        ),
        (RunQuery(trigger=Trigger.MANUAL), "ix_runs_unscheduled"),
    ],
    ids=["last-50-of-a-task", "failures-in-the-last-hour", "history", "task-next-page", "manual"],
)
@pytest.mark.slow
def test_history_queries_are_ordered_index_scans(
    sql_store: RunStore, query: RunQuery, index: str
) -> None:
    """No full scan and no sort step: the index delivers rows in page order (LIMIT stops it)."""
    store = _sql(sql_store)
    store.insert_many(
        rec(
            f"ns/t{i % 40}",
            i,
            RunStatus.FAILED if i % 10 == 0 else RunStatus.SUCCEEDED,
            trigger=Trigger.MANUAL if i % 100 == 0 else Trigger.SCHEDULE,
        )
        for i in range(10_000)
    )
    with store.engine.begin() as conn:
        # Realistic statistics for the PostgreSQL planner. This table only: a bare ANALYZE
        # reads every table of the database, those other workers' tests are dropping too.
        conn.exec_driver_sql("ANALYZE runs")
    plan = _plan(store, query)
    assert index in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # SQLite's sort step
    assert "Sort" not in plan, plan  # PostgreSQL's
    assert "Seq Scan" not in plan, plan


@pytest.mark.parametrize(
    "query",
    [
        RunQuery(task="ns/t3", status=RunStatus.SUCCEEDED),
        RunQuery(task="ns/t3", status=RunStatus.FAILED, trigger=Trigger.SCHEDULE),
        RunQuery(task="ns/t3", trigger=Trigger.MANUAL),
    ],
    ids=["task-and-status", "task-status-trigger", "task-and-trigger"],
)
def test_a_tasks_history_is_read_through_its_index_whatever_else_is_asked(
    sql_store: RunStore, query: RunQuery
) -> None:
    """Without statistics (crontask never runs ANALYZE on SQLite) the planner took another
    index for a task and a status, and read every run of that status of every task."""
    store = _sql(sql_store)
    store.insert_many(
        rec(f"ns/t{i % 40}", i, RunStatus.FAILED if i % 10 == 0 else RunStatus.SUCCEEDED)
        for i in range(4_000)
    )
    plan = _plan(store, query)
    assert "ix_runs_task_scheduled" in plan or "Seq Scan" not in plan, plan
    if store.engine.dialect.name == "sqlite":
        assert "ix_runs_task_scheduled" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
    assert [r.task for r in store.query(query).items] == [query.task] * len(
        store.query(query).items
    )


def test_last_outcomes_read_one_end_of_an_index_range_per_task_and_status(
    sql_store: RunStore,
) -> None:
    """How each task last ended is looked up at the end of its (task, status) range of
    ix_runs_task_status_finished, never by reading the task's records: the status page's
    ok/failing filter asks it of every task it scans, and a task may have a long history."""
    store = _sql(sql_store)
    store.insert_many(
        rec(f"ns/t{i % 40}", i, RunStatus.FAILED if i % 10 == 0 else RunStatus.SUCCEEDED)
        for i in range(10_000)
    )
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE runs")  # this table only (see above)
        asked = ["ns/t3", "ns/t4"]
        stmt = sql_summaries._newest_ends(conn.dialect.name).params(
            asked=json.dumps(asked) if conn.dialect.name == "sqlite" else asked
        )
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        prefix = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
        plan = "\n".join(str(row[-1]) for row in conn.exec_driver_sql(prefix + str(compiled)))
    assert "ix_runs_task_status_finished" in plan, plan
    assert "SCAN runs" not in plan, plan  # SQLite reading the table, or an index, whole
    assert "Seq Scan on runs" not in plan, plan
    assert "ix_runs_task_scheduled" not in plan, plan  # every record of a task


@pytest.mark.parametrize("seed", [4, 5])
def test_prune_in_small_transactions_and_chunks_gives_the_same_result(
    sql_store: RunStore, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """The batching of prune (tasks per transaction, ids per DELETE, max_age rows per
    transaction) is invisible: tiny batches give exactly the reference result."""
    monkeypatch.setattr(sql_retention, "_PRUNE_TX_ROWS", 7)
    monkeypatch.setattr(sql_retention, "SQLITE_PRUNE_PAUSE", 0.0)  # many transactions
    monkeypatch.setattr(sql_retention, "_DELETE_CHUNK", 3)
    rnd = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    records = [
        rec(task, minute, rnd.choice(list(RunStatus)), attempt=attempt)
        for task in ("a/one", "a/two", "b/three")
        for minute in rnd.sample(range(500), 60)
        for attempt in range(1, rnd.choice([1, 1, 2]) + 1)
    ]
    store = _sql(sql_store)
    store.insert_many(records)
    limits = {"a/one": (2, 1), "a/two": (0, 3)}
    now, max_age = T0 + timedelta(minutes=500), timedelta(minutes=200)

    deleted = store.prune(limits, max_age, now)

    expected = reference_prune(records, limits, max_age, now)
    assert sorted(map(sort_key, everything(store))) == sorted(map(sort_key, expected))
    assert deleted == len(records) - len(expected)


class _Deadlock(Exception):
    sqlstate = "40P01"


def test_a_transaction_rolled_back_for_another_is_unavailable_to_callers_that_cannot_retry() -> (
    None
):
    # The run store's writes run such a transaction again (test_write_conflicts.py); anything
    # else that shares translated_errors (the members table) sees a store that did not answer
    # this time, never a driver error that would end its loop.
    with pytest.raises(StoreUnavailable) as info, translated_errors():
        raise exc.OperationalError("INSERT", {}, _Deadlock("deadlock detected"))
    assert isinstance(info.value, RolledBack)


def test_slow_history_reads_leave_connections_for_the_claims(
    sqlite_store: SqlRunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty page or status-filter reads still running (each holds a pooled connection while
    its query runs) must not take every connection: a claim still gets one at once, rather
    than failing after the pool's 30 s wait."""
    release = threading.Event()
    inside = threading.Semaphore(0)
    real = sql_summaries.last_outcomes

    def slow(conn: object, tasks: object) -> object:
        inside.release()
        release.wait(30)
        return real(conn, tasks)  # type: ignore[arg-type]

    monkeypatch.setattr(sql_summaries, "last_outcomes", slow)
    readers = [
        threading.Thread(target=sqlite_store.last_outcomes, args=(["a/b"],)) for _ in range(20)
    ]
    for reader in readers:
        reader.start()
    try:
        assert inside.acquire(timeout=10)  # one read is inside its query
        claim = threading.Thread(target=sqlite_store.claim, args=(rec("c/d"),))
        claim.start()
        claim.join(10)
        assert not claim.is_alive()
        assert sqlite_store.get(rec("c/d").id) is not None
    finally:
        release.set()
        for reader in [*readers, claim]:
            reader.join(30)


def _socket_options(store: SqlRunStore) -> tuple[int, int, int]:
    """The keepalive, its idle time and the user timeout of one of the store's connections."""
    raw = store.engine.raw_connection()
    try:
        fd = raw.driver_connection.pgconn.socket  # type: ignore[union-attr]
        with socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM) as sock:  # a duplicate
            return (
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
            )
    finally:
        raw.close()


@pytest.mark.postgres
def test_postgresql_connections_time_out_a_server_cut_off_by_the_network(
    pg_url: str,
) -> None:
    """Unacknowledged data and missed keepalives end the call, not the kernel's 15 minutes of
    retransmissions; a URL's own settings win."""
    store = SqlRunStore.open(pg_url)
    try:
        assert _socket_options(store) == (1, 10, 30_000)
    finally:
        store.close()
    url = make_url(pg_url).update_query_dict({"keepalives_idle": "60", "tcp_user_timeout": "0"})
    store = SqlRunStore.open(url.render_as_string(hide_password=False))
    try:
        assert _socket_options(store) == (1, 60, 0)
    finally:
        store.close()
