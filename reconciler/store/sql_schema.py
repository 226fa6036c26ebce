"""The ``runs`` table, its column types, and the engine set-up for SQLite and PostgreSQL.

What a connection must be before the store uses it: SQLite in WAL mode with a busy timeout
and writes that begin IMMEDIATE (so that a waiting writer waits instead of failing), PostgreSQL
with a connect timeout and a limit on how long a session may sit idle inside a transaction
(``PG_IDLE_IN_TRANSACTION_TIMEOUT``: a frozen replica's locks go), each with the listener
that replaces the pool's connections after a read-only error or a session the server ended
(:mod:`reconciler.store.sql_errors`, which also says which driver errors are an outage). An
SQLite file deleted or replaced under the process is the store unavailable too,
never a new empty one, until a file that passes a start's checks is at its path again
(``sql_sqlite_file``). The store's operations live in ``sql``.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Dialect, Engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from reconciler import statedir
from reconciler.core.runs import Trigger
from reconciler.core.urls import looks_like_path
from reconciler.store import DB_FILENAME
from reconciler.store.records import utc
from reconciler.store.sql_errors import pg_on_error, sqlite_on_error
from reconciler.store.sql_sqlite_contents import refuse_foreign
from reconciler.store.sql_sqlite_file import (
    SqliteFile,
    check_readable,
    check_sqlite,
    is_uri,
    no_store,
    sqlite_file,
    vet,
)

log = logging.getLogger("crontask.store")

SQLITE_BUSY_TIMEOUT: Final = timedelta(seconds=30)
# How long a write of a run's record (a claim, a save) waits for a lock someone else holds: a
# run waits for its claim, and the recorder writes one batch at a time, so another process
# holding the write lock (an ``sqlite3`` shell in a transaction, a ``LOCK TABLE``) stopped
# every run of every task for as long. Past it the store is unavailable: the runs start
# anyway and their records wait (``controller.recorder``). Background work (pruning, the
# migrations) waits the longer SQLITE_BUSY_TIMEOUT, PostgreSQL's default of no limit.
WRITE_LOCK_WAIT: Final = timedelta(seconds=2)
WAIT_OPTION: Final = "crontask_lock_wait_ms"
# PostgreSQL: a transaction's wait for a lock another session holds, until it ends.
LOCK_WAIT: Final = sa.text("SELECT set_config('lock_timeout', :ms, true)")
# One statement after a batch save, to start PostgreSQL's idle timer again (``save_many``).
IDLE_TIMER: Final = sa.text("SELECT 1")
PG_CONNECT_TIMEOUT_S: Final = 10
# libpq's socket settings, unless the URL gives its own. A server cut off by the network (not
# refusing: silent) held each call for as long as the kernel retransmits, about 15 minutes:
# the claims of runs, the heartbeat and the stop with it. Data left unacknowledged for 30 s,
# or a connection waiting for an answer whose peer misses three keepalives, fails the call
# instead (StoreUnavailable); a live server answers both at once, however long its query.
PG_SOCKET_DEFAULTS: Final = {
    "connect_timeout": PG_CONNECT_TIMEOUT_S,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,  # milliseconds
}
BEGIN_OPTION: Final = "crontask_sqlite_begin"
# How long a PostgreSQL session of the store may sit idle inside a transaction before the
# server ends it (idle_in_transaction_session_timeout, unless the URL, PGOPTIONS, the role or
# the database sets it: ``_pg_on_connect``). A replica frozen inside a transaction (SIGSTOP, a
# frozen VM, a debugger) kept its locks for as long as it was frozen, the kernel answering its
# keepalives: the task's advisory lock of an exclusive claim held every later claim of the
# task on every replica, a run's row held the marking of its runs interrupted, and its tasks
# were never taken over. Well under the takeover the README promises, --lease-duration +
# --renew-interval (17 s by default; these settings do not reach the store): the locks are
# gone before the others see the lease lapse whenever --lease-duration is at least this much
# longer than --renew-interval (the defaults leave 8 s to spare). A live crontask is
# never idle that long inside one: between the statements of a transaction it does only
# bounded work (an exclusive claim's decision, a prune's step of at most 5 000 rows, about
# 150 ms), and a session ended all the same is an outage as any (StoreUnavailable: the
# claim is unanswered, the record written again).
PG_IDLE_IN_TRANSACTION_TIMEOUT: Final = timedelta(seconds=5)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, whatever the back end stores.

    SQLite keeps datetimes as fixed-width ISO text with no offset: writing UTC there (and
    tagging UTC on the way out) keeps both the values and their text ordering right.
    PostgreSQL's ``timestamptz`` returns the session time zone; it is converted back to UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _key(length: int) -> sa.types.TypeEngine[str]:
    # Byte-order collation on PostgreSQL, as SQLite does by default: see migrations v0001.
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


metadata = sa.MetaData()

# The predicate of the partial index ix_runs_unscheduled, as text: a query uses that index only
# if its WHERE holds this very term (SQLite matches terms, it does not prove them).
UNSCHEDULED: Final = sa.text(f"\"trigger\" <> '{Trigger.SCHEDULE.value}'")

runs = sa.Table(
    # Mirrors migrations HEAD; tests/store/test_migrations.py checks that they agree.
    "runs",
    metadata,
    sa.Column("id", _key(255), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("task", _key(255), nullable=False),
    sa.Column("scheduled_at", UTCDateTime(), nullable=False),
    sa.Column("trigger", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("exit_code", sa.Integer(), nullable=True),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Column("message", sa.Text(), nullable=True),
    sa.Column("output", sa.Text(), nullable=False, server_default=""),
    sa.Column("owner", sa.String(255), nullable=True),
    sa.Column("stop_requested", sa.String(64), nullable=True),
    sa.Column("details", sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint("id", "attempt", name="pk_runs"),
    sa.CheckConstraint("attempt >= 1", name="ck_runs_attempt_positive"),
    sa.Index("ix_runs_task_scheduled", "task", "scheduled_at", "id", "attempt"),
    sa.Index("ix_runs_status_scheduled", "status", "scheduled_at", "id", "attempt"),
    sa.Index("ix_runs_scheduled", "scheduled_at", "id", "attempt"),
    # The runs of a trigger other than the schedule (manual runs, retries, catch-ups), few
    # among many: only they are indexed, so the schedule's runs pay nothing for it.
    sa.Index(
        "ix_runs_unscheduled",
        "trigger",
        "scheduled_at",
        "id",
        "attempt",
        sqlite_where=UNSCHEDULED,
        postgresql_where=UNSCHEDULED,
    ),
    # How each task last ended (sql_summaries.last_outcomes): one lookup per task and status.
    sa.Index("ix_runs_task_status_finished", "task", "status", "finished_at"),
)
# History's order, newest first: the sort-key suffix of every index above but the last.
NEWEST_FIRST = (runs.c.scheduled_at.desc(), runs.c.id.desc(), runs.c.attempt.desc())


members = sa.Table(
    # One row per live replica (--ha without Kubernetes); see reconciler.store.members.
    "members",
    metadata,
    sa.Column("id", _key(255), nullable=False),
    sa.Column("address", sa.String(255), nullable=True),
    sa.Column("since", UTCDateTime(), nullable=False),
    sa.Column("renewed", UTCDateTime(), nullable=False),
    sa.Column("lease_seconds", sa.Float(), nullable=False),
    sa.Column("digest", sa.String(64), nullable=True),
    sa.Column("revision", sa.String(64), nullable=True),
    sa.Column("owned", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("draining", sa.Boolean(), nullable=False, server_default=sa.false()),
    # The crontask version it runs (migration 0007); none from a replica of an earlier one.
    sa.Column("version", sa.String(64), nullable=True),
    sa.PrimaryKeyConstraint("id", name="pk_members"),
)

# The oldest revision whose crontask may run on this schema, in one row (migration 0007); see
# reconciler.store.migrations, which reads it.
READERS_TABLE: Final = "crontask_schema_readers"
schema_readers = sa.Table(
    READERS_TABLE,
    metadata,
    sa.Column("oldest", sa.String(4), nullable=False),
)

member_views = sa.Table(
    # The spec hash of each task as each replica reads it; see reconciler.store.members.
    "member_views",
    metadata,
    sa.Column("member", _key(255), nullable=False),
    sa.Column("key", _key(255), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.PrimaryKeyConstraint("member", "key", name="pk_member_views"),
)

instances = sa.Table(
    # One row per crontask without --ha, renewed while it lives; see controller.heartbeat.
    "instances",
    metadata,
    sa.Column("id", _key(255), nullable=False),
    sa.Column("renewed", UTCDateTime(), nullable=False),
    sa.Column("lease_seconds", sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint("id", name="pk_instances"),
)

tracked = sa.Table(
    # Per task, when a crontask last began counting its slots without catching any up
    # (migration 0008); read with the runs by sql_summaries.last_slots.
    "tracked",
    metadata,
    sa.Column("task", _key(255), nullable=False),
    sa.Column("since", UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint("task", name="pk_tracked"),
)

api_tasks = sa.Table(
    # Tasks created through the API, shared by every replica; see reconciler.store.api_tasks.
    "api_tasks",
    metadata,
    sa.Column("key", _key(255), nullable=False),
    sa.Column("document", sa.Text(), nullable=False),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint("key", name="pk_api_tasks"),
)


def _warn_if_in_another_state_dir(database: Path) -> None:
    """Warn a writer whose SQLite file is the ``runs.db`` of a state directory this process
    does not hold (its ``lock`` file is there): the crontask of that state directory, started
    without ``--db``, prunes and recovers that store as its alone until it has seen another's
    beat there (``controller.components``), so the runs and missed-slot marks of the tasks it
    does not declare may go by age, and this crontask lose what it counts its missed slots
    from."""
    folder = database.parent
    if database.name != DB_FILENAME or statedir.holds(folder):
        return
    if not os.path.lexists(folder / statedir.LOCK_FILE):
        return
    log.warning(
        "run store is another crontask's state directory's own runs.db, which that crontask "
        "prunes as its alone until it has seen this crontask's heartbeat (again after each of "
        "its restarts): till then the runs of tasks it does not declare, and the marks this "
        "crontask counts its missed slots from, go by its --history-max-age; give the "
        "crontasks that share a run store the same --db outside any state directory",
        extra={"fields": {"store": str(database.absolute()), "state_dir": str(folder.absolute())}},
    )


def create_engine(url: str, *, existing: bool = False) -> Engine:
    """An engine for a run store URL, configured as the module docs describe (no migration).

    SQLite: the file and its folder are made private, or refused, as ``reconciler.statedir``
    says, before SQLite opens it; with ``existing`` (a reader of what may be another user's
    store) nothing is made or changed, and a missing file is :class:`StoreUnavailable`.
    Raises ValueError for a URL that names no run store, ``statedir.Refused``, OSError."""
    try:
        u = make_url(url)
    except exc.ArgumentError as e:
        hint = "; a SQLite file is sqlite:////absolute/path.db" if looks_like_path(url) else ""
        raise ValueError(f"not a run store URL: {e}{hint}") from None
    backend = u.get_backend_name()
    if backend == "sqlite":
        database = sqlite_file(u)
        check_sqlite()
        if not existing:
            statedir.prepare_db(database, refuse_foreign)
            _warn_if_in_another_state_dir(database)
        elif database.is_dir():  # a usage error, as a writer's refusal of it
            raise ValueError(f"{database} is a directory, not a SQLite file")
        elif not database.is_file():
            raise no_store(database)  # what is there, if anything
        engine = sa.create_engine(u, connect_args={"timeout": SQLITE_BUSY_TIMEOUT.total_seconds()})
        if existing and not is_uri(u):
            check_readable(database)
        path = Path(os.path.abspath(database))
        SqliteFile(path, uri=is_uri(u), vet=None if existing else vet).watch(engine)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        event.listen(engine, "handle_error", sqlite_on_error)
        return engine
    if backend == "postgresql":
        if u.drivername == "postgresql":
            u = u.set(drivername="postgresql+psycopg")
        if u.get_driver_name() != "psycopg":
            raise ValueError(f"PostgreSQL is supported through psycopg 3 only, got {u.drivername}")
        defaults = {k: v for k, v in PG_SOCKET_DEFAULTS.items() if k not in u.query}
        engine = sa.create_engine(u, pool_pre_ping=True, connect_args=defaults)
        event.listen(engine, "connect", _pg_on_connect)
        event.listen(engine, "handle_error", pg_on_error)
        return engine
    raise ValueError(f"unsupported run store URL scheme {u.drivername!r}")


# The store's idle limit, unless a setting more particular than the server's (URL options or
# PGOPTIONS: 'client'; ALTER ROLE/DATABASE ... SET: 'user', 'database', 'database user') says
# otherwise: a user's own value wins. Set with ``options`` in the connect arguments instead, it
# would replace the URL's options (the connect arguments win over the URL's query) and
# PGOPTIONS (libpq reads it only when no options are given), and PgBouncer refuses a start-up
# ``options`` parameter unless told to ignore it. The server-wide value (postgresql.conf) is
# replaced only when it is off or longer.
_PG_IDLE_LIMIT: Final = (
    "SELECT set_config('idle_in_transaction_session_timeout', %(ms)s, false)"
    " FROM pg_settings WHERE name = 'idle_in_transaction_session_timeout'"
    " AND (source = 'default' OR (source IN"
    " ('configuration file', 'command line', 'environment variable')"
    " AND (setting::bigint = 0 OR setting::bigint > %(ms)s::bigint)))"
)
_idle_limit_refused: list[str] = []  # warned once a process


def _pg_on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    ms = int(PG_IDLE_IN_TRANSACTION_TIMEOUT.total_seconds() * 1000)
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(_PG_IDLE_LIMIT, {"ms": str(ms)})
    except Exception as err:  # a server that hides pg_settings: crontask runs without the limit
        dbapi_connection.rollback()
        if not _idle_limit_refused:
            _idle_limit_refused.append(str(err))
            log.warning(
                "idle_in_transaction_session_timeout not set (a replica frozen inside a "
                "transaction keeps its locks until it is resumed): set it for crontask's role",
                extra={"fields": {"error": str(err)[:300]}},
            )
        return
    finally:
        cursor.close()
    # Committed: a session setting made in a transaction rolled back is undone with it.
    dbapi_connection.commit()


def _sqlite_on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # Take transaction control away from Python's sqlite3 module (it would not BEGIN before
    # SELECTs or DDL, see SQLAlchemy's "sqlite_transactions"); _sqlite_on_begin issues BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first: switching to WAL itself needs a lock another process may hold.
        cursor.execute(f"PRAGMA busy_timeout = {_busy_ms()}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        # NORMAL is durable across process crashes in WAL mode (only an OS crash or power loss
        # can drop the last commits), and saves an fsync per transaction.
        cursor.execute("PRAGMA synchronous = NORMAL")
        # SQLite reuses the WAL at the largest size a transaction made it (a large prune: 30-47
        # MB) until it closes; this cuts it back to 4 MiB (1 000 pages) after a checkpoint.
        cursor.execute("PRAGMA journal_size_limit = 4194304")
    finally:
        cursor.close()


def wait_ms(wait: timedelta) -> int:
    """A lock wait in whole milliseconds, as SQLite's busy_timeout and PostgreSQL's
    lock_timeout take it."""
    return int(wait.total_seconds() * 1000)


def _busy_ms() -> int:
    return wait_ms(SQLITE_BUSY_TIMEOUT)


def _sqlite_on_begin(conn: Connection) -> None:
    options = conn.get_execution_options()
    mode = options.get(BEGIN_OPTION, "DEFERRED")
    if mode == "IMMEDIATE":
        # busy_timeout is the connection's, and a pooled connection serves both kinds of
        # write: set before a write's BEGIN when its wait is not the connection's last.
        default = _busy_ms()
        wait = int(options.get(WAIT_OPTION, default))
        info = conn.connection.info
        if info.get(WAIT_OPTION, default) != wait:
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {wait}")
            info[WAIT_OPTION] = wait
    conn.exec_driver_sql(f"BEGIN {mode}")
