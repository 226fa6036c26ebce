"""SQL :class:`~reconciler.store.base.RunStore` on SQLAlchemy 2 Core: SQLite and PostgreSQL.

One implementation for both; the differences are confined to :func:`create_engine` (connection
setup) and :meth:`SqlRunStore.open` (the lock that serialises concurrent migrations).

SQLite (the default, ``state_dir/runs.db``):

- the file and its parent directories are created if missing;
- WAL journal mode, so readers never block the writer and vice versa;
- ``busy_timeout``: two crontask processes sharing one file wait for each other's write lock
  (up to :data:`SQLITE_BUSY_TIMEOUT`) rather than fail; after that it is ``StoreUnavailable``;
- every write transaction is ``BEGIN IMMEDIATE``: it takes the write lock up front, so it waits
  in the busy handler instead of failing with ``SQLITE_BUSY`` when upgrading a read lock (the
  classic WAL pitfall), and read-modify-write operations (prune) are serialised;
- foreign keys on (none yet; so that future ones are enforced from day one);
- connections are pooled per thread-safe QueuePool; the store is safe to share between threads.

PostgreSQL (``postgresql+psycopg://``; a bare ``postgresql://`` is taken to mean psycopg 3):
pre-ping on checkout so that a restarted server costs one failed call, not a broken pool;
a connect timeout so that an unreachable server is ``StoreUnavailable`` quickly. Two replicas
claiming the same slots lock their rows in one order (the batch sorted by key), and a write the
server still rolls back to break a deadlock is run again (:meth:`SqlRunStore._write`): it is
not an outage, and a claim that was taken for one would run its slot a second time.

Waits for a lock another session holds: a run's write waits ``WRITE_LOCK_WAIT``, then the store
is unavailable (its record waits); so does the rolled-back write transaction in which a writer's
open compiles the claims and saves (``sql_warmup``), and a store that takes no write then (locked,
read-only) opens all the same, the first write compiling them. A reader's store (``crontask
runs``, opened ``existing``) waits ``READ_LOCK_WAIT`` per read on PostgreSQL, its open's schema
check (``alembic_version``) included, then says whose lock it gave up on; the running crontask's
reads, and its open's (which migrates, with its own lock wait), wait as the database says.

Uniqueness of ``(id, attempt)`` is the table's primary key: the database arbitrates claims, so it
holds across threads, processes and hosts alike. An exclusive claim (``claim_exclusive``: no run
of the task going for another owner) looks and inserts in one write transaction: SQLite's is
exclusive; PostgreSQL's first takes an advisory lock on each of its tasks, so the claimers of a
task take turns and each sees what the one before it committed.

A read fetches its rows whole (``Result.all()``, ``first()``) before it makes records of them:
a statement left unfinished on a pooled SQLite connection (a conversion that raised) kept it on
an old snapshot, and each write on it then failed at once, "database is locked". A row this
version cannot read is left out (``sql_rows``): a page may come back short, with its cursor.

Here: the connections, the claims and saves, the reads of one run. The statements on the runs
going and on those of owners gone are ``sql_running``'s, the transactions ``sql_tx``'s; the
other ``sql_*`` modules hold the rest (exclusive claims, pages, summaries, beats, retention).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Collection, Container, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from reconciler.core.runs import LastOutcomes, RunRecord
from reconciler.store import (
    migrations,
    sql_beats,
    sql_exclusive,
    sql_import,
    sql_ping,
    sql_retention,
    sql_rows,
    sql_running,
    sql_summaries,
    sql_tracked,
    sql_tx,
    sql_warmup,
)
from reconciler.store.base import DuplicateRun, ExclusiveClaim, StoreUnavailable
from reconciler.store.query import Cursor, RunPage, RunQuery
from reconciler.store.records import normalized, utc
from reconciler.store.sql_cut import PG_READ_ANSWER_WAIT, PG_WRITE_ANSWER_WAIT, Cutter
from reconciler.store.sql_errors import is_unique_violation, reader_said, translated_errors
from reconciler.store.sql_pages import select_page
from reconciler.store.sql_rows import MUTABLE, record_to_row, row_key
from reconciler.store.sql_schema import (
    IDLE_TIMER,
    SQLITE_BUSY_TIMEOUT,
    WRITE_LOCK_WAIT,
    create_engine,
    metadata,
    runs,
    wait_ms,
)
from reconciler.store.sql_sqlite_file import refuse_unlocked, release

__all__ = [
    "SQLITE_BUSY_TIMEOUT",
    "SqlRunStore",
    "create_engine",
    "metadata",
    "runs",
]

_T = TypeVar("_T")
# How many times a write the server rolled back (``rolled_back``) is tried in all.
_WRITE_ATTEMPTS: Final = 5
# Reads whose cost grows with the history (a page of runs, each task's last outcomes), at once:
# each holds a pooled connection while it runs, and sixteen of them from the API and the status
# page took all fifteen, so the claims that keep a slot to one run waited 30 s and failed.
_BULK_READERS: Final = 4
# A reader of the history (``crontask runs``, a store opened ``existing``): how long one of its
# reads waits on PostgreSQL for a lock another session holds on a table (LOCK TABLE, VACUUM
# FULL, REINDEX, a newer replica's migration hold ACCESS EXCLUSIVE, which every SELECT waits
# for; one on alembic_version held its open's schema check). It waited without limit, saying
# nothing; past this it is StoreUnavailable. The running crontask's reads are not bounded here:
# the API bounds its own (PAGE_READ_WAIT). SQLite's readers wait for no lock (WAL).
READ_LOCK_WAIT: Final = timedelta(seconds=10)

_c = runs.c


class SqlRunStore:
    """The run store on a SQLAlchemy engine. Build it with :meth:`open` (which migrates)."""

    keep_marks = False  # save_many leaves marked records so (``store.keep_marks``)

    def __init__(
        self, engine: Engine, *, read_wait: timedelta | None = None, cutter: Cutter | None = None
    ) -> None:
        """Wrap an engine from :func:`create_engine` whose schema is already at HEAD.
        ``read_wait``: how long a read waits for a lock on PostgreSQL (else: no limit).
        ``cutter``: the engine's (made with it: it knows its connections from the first)."""
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._read_wait = None if read_wait is None else wait_ms(read_wait)
        self._closed = False
        # PostgreSQL: a call the database never answers is ended past these (``sql_cut``).
        self._cutter = None if self._sqlite else cutter or Cutter(engine)
        self.write_answer_wait = None if self._sqlite else PG_WRITE_ANSWER_WAIT
        self.read_answer_wait = None if self._sqlite else PG_READ_ANSWER_WAIT
        self._bulk_reads = threading.BoundedSemaphore(_BULK_READERS)
        # Built once: a statement built per call is traversed for its cache key on every
        # execution, which was most of a burst's claims and saves in the store's threads.
        insert = sqlite_insert(runs) if self._sqlite else pg_insert(runs)
        # Rows that exist are skipped, and RETURNING says which were inserted.
        self._claim_stmt = insert.on_conflict_do_nothing(
            index_elements=["id", "attempt"]
        ).returning(_c.id, _c.attempt)
        self._save_stmt = insert.on_conflict_do_update(
            index_elements=["id", "attempt"],
            set_={name: insert.excluded[name] for name in MUTABLE},
        )
        self._save_keeping_stmt = insert.on_conflict_do_update(
            index_elements=["id", "attempt"],
            set_={name: insert.excluded[name] for name in MUTABLE},
            where=sql_running.SAVED_OVER,  # a record marked interrupted stands
        )

    @classmethod
    def open(cls, url: str, *, writer: bool = False, existing: bool = False) -> SqlRunStore:
        """Connect to ``url``, migrate the schema to HEAD (``existing``: only check that it is
        there), return the store. ``writer``: this
        process will claim and save runs (``crontask run``), so those statements are compiled
        now if the store takes a write now (see ``_warm_up``); a reader (``crontask runs``)
        takes no write lock. ``existing``: see :func:`create_engine`; its reads, the schema
        check's first, wait at most READ_LOCK_WAIT for a lock.

        Safe when several processes open the same database at once: the upgrade runs in one
        transaction under a database-wide lock (SQLite: ``BEGIN IMMEDIATE``, PostgreSQL: an
        advisory transaction lock), and Alembic re-reads the version inside it, so the
        latecomers find the work done. PostgreSQL DDL is transactional, so a failed upgrade
        leaves the previous schema; SQLite DDL in a transaction is too.
        """
        if not existing:  # a reader may read so (read-only media), a writer corrupts the file
            refuse_unlocked(url)
        engine = create_engine(url, existing=existing)
        cutter = None if engine.dialect.name == "sqlite" else Cutter(engine)
        try:
            if existing:
                _check(engine, wait_ms(READ_LOCK_WAIT))
            else:
                # A damaged file is refused here, named (sql_errors._SQLITE_DAMAGED).
                with translated_errors(damaged=False):
                    migrations.migrate(engine)
        except BaseException:
            engine.dispose()
            raise
        store = cls(engine, read_wait=READ_LOCK_WAIT if existing else None, cutter=cutter)
        if writer:
            try:
                store._warm_up()
            except BaseException:
                store.close()
                raise
        return store

    @property
    def engine(self) -> Engine:
        return self._engine

    def _warm_up(self) -> None:
        """Compile the claims and saves now (``sql_warmup``), unless the store takes no write."""
        sql_warmup.warm_up(self._engine, (self._claim_stmt, self._save_stmt))

    # -- connections ---------------------------------------------------------------------------

    def _tx(
        self, *, write: bool, wait: timedelta | None = None, run_path: bool = False
    ) -> AbstractContextManager[Connection]:
        """A transaction; ``wait``: how long a write waits for a lock another holds (else
        SQLite's busy timeout, PostgreSQL's lock_timeout: none). A read waits as the store
        was opened (``read_wait``). On PostgreSQL it fails once past ``write_answer_wait``
        (``run_path``: a run's claim or record, ``_write``), else ``read_answer_wait``."""
        if self._closed:
            raise RuntimeError("the run store is closed")
        ms = (None if wait is None else wait_ms(wait)) if write else self._read_wait
        bound = self.write_answer_wait if run_path else self.read_answer_wait
        return sql_tx.transaction(
            self._engine,
            sqlite=self._sqlite,
            write=write,
            ms=ms,
            read_wait=self._read_wait,
            cutter=self._cutter,
            bound=bound,
        )

    def _write(self, work: Callable[[Connection], _T], *, lock_wait: bool = True) -> _T:
        """``work`` in one write transaction, run again when PostgreSQL rolled the transaction
        back for another's sake (a deadlock, a serialization failure): the rows decide each
        write here, so running it again is safe, and it then gets the answer it would have had
        if it had come second. After :data:`_WRITE_ATTEMPTS`, RolledBack (a StoreUnavailable).
        ``lock_wait``: a lock someone else holds is waited for WRITE_LOCK_WAIT (a run's write),
        else as long as the database's own settings say."""
        wait = WRITE_LOCK_WAIT if lock_wait else None
        tx = functools.partial(self._tx, write=True, wait=wait, run_path=True)
        return sql_tx.retried(tx, work, _WRITE_ATTEMPTS)

    # -- RunStore ------------------------------------------------------------------------------

    def claim(self, record: RunRecord) -> None:
        record = normalized(record)
        statement = runs.insert().values(record_to_row(record))
        try:
            self._write(lambda conn: conn.execute(statement))
        except exc.IntegrityError as e:
            if is_unique_violation(e):
                raise DuplicateRun(record.id, record.attempt) from None
            raise

    def claim_many(self, records: Sequence[RunRecord]) -> list[bool]:
        if not records:
            return []
        keys = [(r.id, r.attempt) for r in records]
        # One statement for the batch. Same atomicity per row as claim(): the primary key decides.
        # In key order: two replicas claiming the same slots then lock them in the same order.
        rows = sorted((record_to_row(normalized(r)) for r in records), key=row_key)
        found = self._write(lambda conn: conn.execute(self._claim_stmt, rows).all())
        inserted = {(row.id, row.attempt) for row in found}
        seen: set[tuple[str, int]] = set()
        claimed: list[bool] = []
        for key in keys:  # a key twice in one batch: only its first record is the claim
            claimed.append(key in inserted and key not in seen)
            seen.add(key)
        return claimed

    def claim_exclusive(self, records: Sequence[RunRecord]) -> list[ExclusiveClaim]:
        if not records:
            return []
        records = [normalized(r) for r in records]
        # Without the run path's lock wait: the advisory lock is held by the claim of another
        # replica, and a claim that gave up on it would be made plainly (controller.claims),
        # without the look for that replica's run: Forbid's slot would run beside it.
        return self._write(
            lambda conn: sql_exclusive.claim(conn, records, self._claim_stmt, self._sqlite),
            lock_wait=False,
        )

    def complete(self, record: RunRecord) -> None:
        row = record_to_row(normalized(record))
        values = {name: row[name] for name in MUTABLE}
        statement = (
            runs.update().where(_c.id == record.id, _c.attempt == record.attempt).values(values)
        )
        if self._write(lambda conn: conn.execute(statement).rowcount) == 0:
            raise KeyError((row["id"], row["attempt"]))

    def save_many(self, records: Sequence[RunRecord]) -> list[RunRecord]:
        # The last record per key: PostgreSQL refuses to update one row twice in a statement.
        latest = {(r.id, r.attempt): record_to_row(normalized(r)) for r in records}
        rows = [latest[key] for key in sorted(latest)]  # in key order, as claim_many
        stmt = self._save_keeping_stmt if self.keep_marks else self._save_stmt

        def save(conn: Connection) -> list[RunRecord]:
            conn.execute(stmt, rows)
            left = sql_running.left_marked(conn, rows) if self.keep_marks else []
            if not self._sqlite:
                # After psycopg's pipelined executemany the server does not start its idle
                # timer again until the next statement: a replica frozen between this save and
                # its COMMIT would hold the rows for ever despite
                # idle_in_transaction_session_timeout (sql_schema.PG_IDLE_IN_TRANSACTION_TIMEOUT).
                # One more statement starts it (RETURNING did too, at two or three times the
                # cost of a save).
                conn.execute(IDLE_TIMER)
            return left

        return self._write(save) if rows else []

    def get(self, run_id: str, attempt: int | None = None) -> RunRecord | None:
        stmt = sa.select(runs).where(_c.id == run_id)
        if attempt is None:  # the latest attempt this version reads
            stmt = stmt.where(*sql_rows.READABLE).order_by(_c.attempt.desc()).limit(1)
        else:
            stmt = stmt.where(_c.attempt == attempt)
        with self._tx(write=False) as conn:
            row = conn.execute(stmt).first()
        return sql_rows.record_of(row)

    def attempts(self, run_id: str) -> list[RunRecord]:
        stmt = sa.select(runs).where(_c.id == run_id).order_by(_c.attempt)
        with self._tx(write=False) as conn:
            rows = conn.execute(stmt).all()
        return sql_rows.records_of(rows)

    def query(self, q: RunQuery) -> RunPage:
        stmt = select_page(q)
        with self._bulk_reads, self._tx(write=False) as conn:
            rows = conn.execute(stmt).all()
        if len(rows) <= q.limit:
            return RunPage(sql_rows.records_of(rows), None)
        # After the page's last row, read or not: an unreadable one is not read again.
        last = rows[q.limit - 1]
        cursor = Cursor(utc(last.scheduled_at), last.id, last.attempt)
        return RunPage(sql_rows.records_of(rows[: q.limit]), cursor.encode())

    def latest(self, task: str) -> RunRecord | None:
        with self._tx(write=False) as conn:
            return sql_summaries.latest(conn, task)

    def latest_many(self, tasks: Collection[str]) -> dict[str, RunRecord]:
        with self._bulk_reads, self._tx(write=False) as conn:
            return sql_summaries.latest_many(conn, tasks)

    def last_slots(self, tasks: Collection[str] | None = None) -> dict[str, datetime]:
        with self._tx(write=False) as conn:  # one snapshot of both
            slots = sql_summaries.last_slots(conn, tasks)
            return sql_tracked.later(slots, sql_tracked.marks(conn, tasks))

    def mark_tracked(self, since: Mapping[str, datetime]) -> None:
        # A lock another holds is waited for as a run's write is (WRITE_LOCK_WAIT): a stop
        # waits for this write, and one that fails goes with the next pass's marks
        # (``Dispatcher.mark_tracked``). Bounded transactions.
        write = self._write
        pause = sql_retention.SQLITE_PRUNE_PAUSE if self._sqlite else 0.0  # as prune's
        sql_tracked.mark(write, since, pause=pause)

    def last_outcomes(self, tasks: Collection[str]) -> dict[str, LastOutcomes]:
        with self._bulk_reads, self._tx(write=False) as conn:
            return sql_summaries.last_outcomes(conn, tasks)

    def running(self, task: str | None = None) -> list[RunRecord]:
        stmt = sql_running.running(task)
        with self._tx(write=False) as conn:
            rows = conn.execute(stmt).all()
        return sql_rows.records_of(rows)

    def request_stop(self, run_ids: Collection[str], reason: str) -> int:
        ids = sorted(set(run_ids))
        if not ids:
            return 0
        stmt = sql_running.request_stop(ids, reason)
        return int(self._write(lambda conn: conn.execute(stmt).rowcount))

    def stop_requests(
        self, owner: str, runs: Collection[tuple[str, int]] = ()
    ) -> list[tuple[str, int, str]]:
        reads = sql_running.stop_requests_chunked(owner, {run for run, _ in runs})
        with self._tx(write=False) as conn:  # the chunks in one read transaction
            rows = [row for stmt in reads for row in conn.execute(stmt)]
        return sql_running.asked_to_stop(rows, runs)

    def take_over(self, run_id: str, attempt: int, owner: str) -> RunRecord | None:
        update, read = sql_running.take_over(run_id, attempt, owner)

        def work(conn: Connection) -> sa.Row[Any] | None:
            conn.execute(update)
            return conn.execute(read).first()

        return sql_rows.record_of(self._write(work))

    def mark_interrupted(
        self,
        owners: Collection[str],
        now: datetime,
        *,
        keep: Collection[str] = (),
        note: str = "",
    ) -> list[RunRecord]:
        now = utc(now)
        owners = sorted(set(owners))
        if not owners:
            return []
        stmt = sql_running.mark_interrupted(owners, sorted(set(keep)), now, note)
        done = sql_rows.records_of(self._write(lambda conn: conn.execute(stmt).all()))
        return sorted(done, key=lambda r: (r.scheduled_at, r.id, r.attempt))

    def untold(
        self, since: datetime, after: tuple[datetime, str, int] | None = None
    ) -> list[RunRecord]:
        stmt = sql_running.untold(since, after)
        with self._tx(write=False) as conn:
            rows = conn.execute(stmt).all()
        return sql_rows.records_of(rows)

    def take_untold(self, run_ids: Collection[str]) -> list[RunRecord]:
        ids = sorted(set(run_ids))
        if not ids:
            return []
        stmt = sql_running.take_untold(ids)
        done = sql_rows.records_of(self._write(lambda conn: conn.execute(stmt).all()))
        return sorted(done, key=lambda r: (r.scheduled_at, r.id, r.attempt))

    def beat(self, instance: str, lease_seconds: float, now: datetime) -> None:
        statement = sql_beats.beat(self._sqlite, instance, lease_seconds, now)
        self._write(lambda conn: conn.execute(statement))

    def beats(self) -> dict[str, tuple[str, float]]:
        with self._tx(write=False) as conn:
            return sql_beats.beats(conn)

    def forget_beats(self, instances: Collection[str]) -> None:
        if instances:
            statement = sql_beats.forget(instances)
            self._write(lambda conn: conn.execute(statement))

    def prune(
        self,
        limits: Mapping[str, tuple[int, int]],
        max_age: timedelta | None,
        now: datetime,
        *,
        busy: Container[str] = (),
        declared: Collection[str] | None = None,
        owner: str | None = None,
        retrying: Collection[str] | None = (),
    ) -> int:
        # PostgreSQL locks rows, not the database: a claim never waits behind a prune there.
        pause = sql_retention.SQLITE_PRUNE_PAUSE if self._sqlite else 0.0
        kept = sql_retention.Kept(
            busy,
            None if declared is None else frozenset(declared),
            owner,
            None if retrying is None else frozenset(retrying),
        )
        deleted = sql_retention.prune(
            lambda: self._tx(write=True), limits, max_age, utc(now), kept, pause=pause
        )
        if max_age is not None and declared is not None and owner is None:
            # Not shared with crontasks declaring other tasks: an undeclared task's mark is
            # no one's (with ``owner``, another's may be; one row per task key stays).
            read = functools.partial(self._tx, write=False)
            write = functools.partial(self._write, lock_wait=False)
            cutoff = utc(now) - max_age
            sql_tracked.forget_aged(read, write, cutoff, kept.declared or (), pause=pause)
        return deleted

    def ping(self) -> None:
        """StoreUnavailable unless the store can take records now (``sql_ping``)."""
        if self._closed:
            raise StoreUnavailable("the run store is closed")
        with translated_errors(), self._engine.connect() as conn:
            sql_ping.check(conn, sqlite=self._sqlite)

    def close(self) -> None:
        self._closed = True
        self._engine.dispose()
        release(self._engine)  # the SQLite file it held (weakref.finalize: when collected)

    # -- beyond the Protocol -------------------------------------------------------------------

    def insert_many(self, records: Iterable[RunRecord], batch_size: int = 10_000) -> int:
        """Insert records in bulk (one executemany per batch, one transaction per batch).

        For imports and benchmarks, not for claiming: a duplicate raises :class:`DuplicateRun`
        for its whole batch (which is rolled back), without saying which record it was.
        """
        rows = (record_to_row(normalized(record)) for record in records)
        return sql_import.insert_many(lambda: self._tx(write=True), rows, batch_size)


def _check(engine: Engine, read_wait: int) -> None:
    """A reader's schema check (``migrations.check``: a reader changes nothing), whose reads
    wait ``read_wait`` ms for a lock as the reader's others do, and say so as they do."""
    with reader_said(read_wait), translated_errors(damaged=False):
        migrations.check(engine, lock_wait=read_wait)
