"""Schema versioning for the SQL run store, with Alembic, run programmatically.

There is no ``alembic.ini``: :func:`upgrade` builds the Alembic config in code, and ``env.py``
only accepts a connection handed to it through ``config.attributes["connection"]``, so the
migrations always run inside the caller's transaction (which is what makes concurrent opens safe,
see :func:`reconciler.store.sql.SqlRunStore.open`).

Revisions live in ``versions/``, one file each, ids ``0001``, ``0002``, ... in order. A revision
is never edited once released; changes are new revisions.

A database that is no crontask run store, or a damaged one, is refused before anything is
written to it (IncompatibleSchema, one sentence, :func:`_not_ours`): another application's
Alembic revision, ``alembic_version`` holding several rows or of another shape (no
``version_num``), or one of crontask's tables there without a revision (another application's
``runs``, or ``alembic_version`` emptied). Only a four-digit revision after :data:`HEAD` is said
to be a newer crontask's.

A newer crontask's schema is refused too (an older crontask cannot know what it changed),
unless that crontask says this one may run on it: :data:`READERS_TABLE` holds, in one row,
the oldest revision whose crontask may (``oldest``). A revision whose changes an older
crontask can write through without knowing them leaves it as it was, or creates it with the
revision before its own: a nullable column (or one with a default) whose value the newer code
does not rely on being kept up to date, a table no older table's rows depend on (no foreign
key to them) and that need not be kept in step with them, an index that is not unique. Any
other change (a foreign key to an older table, a unique index, a check or a trigger an older
write could break, a column the newer code must see kept current) sets it to itself, and its
downgrade puts back the value before it. Then an older replica that restarts during a rolling
update, or a rollback, runs on the newer schema as it is: nothing is migrated either way.
Without the table (a schema of this revision or older), a damaged one, or ``oldest`` after
:data:`HEAD`, the newer schema is refused as before.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from reconciler.store import sql_schema
from reconciler.store.base import IncompatibleSchema, StoreUnavailable
from reconciler.store.sql_schema import BEGIN_OPTION, metadata

if TYPE_CHECKING:  # Alembic is imported only to migrate: a store at HEAD needs none of it
    from alembic.config import Config

__all__ = ["HEAD", "check", "current_revision", "known_revisions", "migrate", "upgrade"]

log = logging.getLogger("crontask.store")
_PG_MIGRATION_LOCK: Final = 0x6372_6F6E_7461_736B  # "crontask": the advisory lock for upgrades
LOCK_WAIT: Final = "1s"  # PostgreSQL: how long one try of a migration waits for a table
LOCK_RETRY_FIRST = 1.0  # seconds before the second try; doubling
LOCK_RETRY_MOST = 30.0
_LOCK_NOT_AVAILABLE: Final = "55P03"
_UNDEFINED_COLUMN: Final = "42703"
# The sessions that hold a lock on one of crontask's tables in its own schema (at most 5).
_HOLDERS: Final = sa.text(
    "SELECT DISTINCT a.pid, a.application_name FROM pg_locks l "
    "JOIN pg_stat_activity a ON a.pid = l.pid "
    "JOIN pg_class c ON c.oid = l.relation "
    "WHERE l.granted AND a.pid <> pg_backend_pid() "
    "AND c.relnamespace = current_schema()::regnamespace AND c.relname = ANY(:tables) "
    "ORDER BY a.pid LIMIT 5"
)

HEAD: Final = "0008"
"""The revision this code reads and writes; the contract suite checks it is the script head."""

READERS_TABLE: Final = sql_schema.READERS_TABLE
"""One row, ``oldest``: the oldest revision whose crontask may run on this schema (see the
module). Made by revision 0007 and written by the migrations after it; read here."""

_HERE = Path(__file__).resolve().parent
_REVISION = re.compile(r"[0-9]{4}")
# Alembic's table of the revision (its default name, in the connection's default schema), read
# here with plain SQL as Alembic reads it: importing Alembic is a tenth of crontask's start.
_VERSION_TABLE: Final = "alembic_version"
_VERSION_NUM: Final[sa.ColumnClause[str]] = sa.column("version_num")
_VERSIONS: Final = sa.select(sa.table(_VERSION_TABLE, _VERSION_NUM).c.version_num)


def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    # configparser interpolation: a literal '%' in the install path would break the option.
    cfg.set_main_option("script_location", str(_HERE).replace("%", "%%"))
    return cfg


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every revision id this code knows about (cached: the files do not change at runtime)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_config())
    return frozenset(rev.revision for rev in script.walk_revisions())


def current_revision(connection: Connection) -> str | None:
    """The database's revision, ``None`` if it was never migrated (no ``alembic_version``, or
    an empty one). IncompatibleSchema for several (crontask's history has one line). Read as
    Alembic's ``MigrationContext.get_current_heads`` reads it, without importing Alembic."""
    heads: list[str] = []
    if connection.dialect.has_table(connection, _VERSION_TABLE):
        heads = _heads(connection)
    if len(heads) > 1:
        listed = ", ".join(repr(head) for head in sorted(heads))
        _not_ours(connection, f"its alembic_version table holds several revisions ({listed})")
    return heads[0] if heads else None


def _heads(connection: Connection) -> list[str]:
    """The rows of ``alembic_version``; IncompatibleSchema if the table has no ``version_num``
    (another application's table of that name: the database is reachable, and not crontask's).
    On PostgreSQL the select is tried in a savepoint, so the caller's transaction stays usable
    after its failure; on SQLite a failed statement leaves the transaction as it was."""
    nested = connection.begin_nested() if connection.dialect.name == "postgresql" else None
    try:
        with nested or contextlib.nullcontext():
            return list(connection.execute(_VERSIONS).scalars())
    except (sa.exc.ProgrammingError, sa.exc.OperationalError) as err:
        if not _no_such_column(err):
            raise  # a lock waited for too long, a lost connection: not a foreign table
        _not_ours(connection, "its alembic_version table has no version_num column")


def _no_such_column(err: sa.exc.DBAPIError) -> bool:
    if getattr(err.orig, "sqlstate", None) == _UNDEFINED_COLUMN:  # PostgreSQL
        return True
    return isinstance(err.orig, sqlite3.OperationalError) and str(err.orig).startswith(
        "no such column"
    )


def refuse_unknown(connection: Connection, current: str | None) -> None:
    """Refuse a database whose revision (``current``) no crontask this old or older wrote, or
    which has none but holds crontask's tables already: something else is there, and
    upgrading would fail on it halfway (a table that exists) or write into it."""
    if current is None:
        ours = set(metadata.tables)
        found = sorted(ours.intersection(sa.inspect(connection).get_table_names()))
        if not found:
            return
        # Another process may have made the store since ``current`` was read (PostgreSQL
        # reads each statement anew): its revision is there then.
        if (now := current_revision(connection)) is not None:
            refuse_unknown(connection, now)
            return
        tables = ", ".join(repr(name) for name in found)
        _not_ours(connection, f"it holds the table(s) {tables} but no schema revision")
    if current in known_revisions():
        return
    if _REVISION.fullmatch(current) and current > HEAD:
        oldest = oldest_reader(connection)
        if oldest is None or oldest > HEAD:
            _newer(current, oldest)
        return
    _not_ours(connection, f"its schema revision {current!r} is none a crontask writes")


def _ahead(current: str | None) -> bool:
    """Whether ``current`` (a revision ``_known`` let pass) is a newer crontask's: one this
    crontask may run on as it is (see the module), never to be migrated."""
    return current is not None and current not in known_revisions()


def oldest_reader(connection: Connection) -> str | None:
    """The oldest revision whose crontask may run on this schema (:data:`READERS_TABLE`);
    None if the table is not there, or is not one row of one revision (damaged: as if absent,
    so the schema is refused rather than trusted). Only a table of the schema crontask's own
    tables are in counts: not a view, nor one another user put in a schema further along
    PostgreSQL's ``search_path``."""
    inspector = sa.inspect(connection)
    schema = inspector.default_schema_name
    if READERS_TABLE not in inspector.get_table_names(schema=schema):
        return None
    columns = {column["name"] for column in inspector.get_columns(READERS_TABLE, schema=schema)}
    if "oldest" not in columns:  # asked for, it would fail the transaction
        return None
    oldest: sa.ColumnClause[Any] = sa.column("oldest")
    query = sa.select(oldest).select_from(sa.table(READERS_TABLE, schema=schema)).limit(2)
    rows = connection.execute(query).scalars().all()
    if len(rows) != 1 or not isinstance(rows[0], str) or not _REVISION.fullmatch(rows[0]):
        return None
    return rows[0]


def _not_ours(connection: Connection, why: str) -> NoReturn:
    raise IncompatibleSchema(
        f"{_where(connection)} is not a crontask run store, or a damaged one: {why}; give "
        "crontask a database (or file) of its own, or restore this one from a backup"
    )


def _where(connection: Connection) -> str:
    """The database, as the user named it: a SQLite file's path, a server's URL without its
    password."""
    url = connection.engine.url
    if url.get_backend_name() == "sqlite":
        return url.database or "the SQLite database"
    return url.render_as_string(hide_password=True)


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Migrate to ``revision`` on ``connection``, inside the transaction the caller holds."""
    from alembic import command

    cfg = _config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


def downgrade(connection: Connection, revision: str) -> None:
    """Migrate down to ``revision`` (for tests and manual recovery; crontask never does this)."""
    from alembic import command

    cfg = _config()
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, revision)


def check(engine: Engine, *, lock_wait: int | None = None) -> None:
    """For a reader (``crontask runs``), who changes nothing: the database of ``engine`` must be
    at :data:`HEAD` already. Upgrading it would take the migration's lock under a running
    crontask, and leave an older crontask on that store unable to start. IncompatibleSchema
    otherwise (StoreUnavailable for a database no crontask has used).

    ``lock_wait``: on PostgreSQL, how long (ms) its reads wait for a lock another session
    holds on ``alembic_version`` or :data:`READERS_TABLE` (a ``LOCK TABLE``, a migration that
    alters them), as the reader's other reads do; the driver's error then goes through (the
    caller says it, ``sql_errors.reader_said``). None: as long as the database's own settings
    say, which for a reader was for ever."""
    with engine.connect() as conn, conn.begin():
        if lock_wait is not None and conn.dialect.name == "postgresql":
            conn.execute(sql_schema.LOCK_WAIT, {"ms": str(lock_wait)})  # this transaction only
        current = current_revision(conn)
        if current != HEAD:
            refuse_unknown(conn, current)
    if current == HEAD or _ahead(current):
        return
    if current is None:
        raise StoreUnavailable("no run store in that database (no crontask run has used it)")
    raise IncompatibleSchema(
        f"the run store schema is at revision {current!r}, older than this crontask's "
        f"{HEAD!r}: read it with the crontask that writes it, or let this version's "
        "`crontask run` upgrade it (a reader changes nothing)"
    )


def _newer(current: str, oldest: str | None) -> NoReturn:
    may = f"; a crontask of revision {oldest!r} or newer may run on it" if oldest else ""
    raise IncompatibleSchema(
        f"the run store schema is at revision {current!r}, which this crontask does not "
        f"know (it knows {sorted(known_revisions())}); it was written by a newer crontask{may}"
    )


def migrate(engine: Engine) -> None:
    """Bring the database of ``engine`` to :data:`HEAD`, once however many processes open it at
    once (SQLite's write lock, PostgreSQL's advisory lock); IncompatibleSchema if a newer
    crontask wrote it, or if it is no crontask run store (``_known``).

    On PostgreSQL a revision that alters a table waits for every other session's lock on it,
    even a reader's (a ``pg_dump``, an open ``psql`` transaction), and every statement on that
    table queues behind the waiting one: the older replicas of a rolling update could not
    renew their membership and would stop starting runs. So each try waits at most
    :data:`LOCK_WAIT` for a table, is rolled back if that is not enough, and is tried again
    after a backoff, naming the sessions that hold crontask's tables."""
    with contextlib.ExitStack() as stack:
        with _first_look(engine):  # not the upgrade: it may take minutes of work
            conn = stack.enter_context(engine.connect())
            with conn.begin():
                current = current_revision(conn)
                if current != HEAD:
                    refuse_unknown(conn, current)
        if current == HEAD:
            return  # the common case: no lock taken
        if current is not None and _ahead(current):
            _run_on_newer(current)
            return
        if engine.dialect.name == "sqlite":
            conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
        fields = {"from": current, "to": HEAD}
        if current is not None:
            # Said before and after: an index is built over the whole history, a minute or
            # more for millions of records, and nothing else starts meanwhile.
            log.info("run store schema upgrading", extra={"fields": fields})
        started = time.monotonic()
        for tries in itertools.count(1):
            try:
                upgraded = _migrate_locked(conn)
                break
            except sa.exc.OperationalError as err:
                if getattr(err.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                    raise
                _wait_for_tables(conn, tries)
        if upgraded and current is not None:
            seconds = round(time.monotonic() - started, 1)
            log.info("run store schema upgraded", extra={"fields": {**fields, "seconds": seconds}})


# SQLite: how long the first look at the store (its connection, the read of its revision)
# waits in silence for a lock another process holds. A write lock never holds it (WAL: readers
# wait for none), but one that shuts readers out too did (another process in PRAGMA
# locking_mode=EXCLUSIVE, or writing the file in rollback-journal mode), for the whole busy
# timeout, silent, and the start then failed with "database is locked". crontask cannot start
# without the schema's revision (it may have to upgrade it): it waits, saying what for.
FIRST_LOOK_QUIET: Final = 2.0


@contextlib.contextmanager
def _first_look(engine: Engine) -> Iterator[None]:
    """On SQLite: a warning once the block has waited FIRST_LOOK_QUIET, and the lock it
    waited for named if it ends in SQLITE_BUSY after that (StoreUnavailable)."""
    if engine.dialect.name != "sqlite":
        yield
        return
    path = engine.url.database or "the SQLite database"
    most = sql_schema.SQLITE_BUSY_TIMEOUT.total_seconds()
    told = threading.Event()

    def say() -> None:
        told.set()
        log.warning(
            "run store locked by another process, readers too: crontask starts once it has"
            " read the store's schema (another process in PRAGMA locking_mode=EXCLUSIVE?)",
            extra={"fields": {"file": path, "waits_at_most": most}},
        )

    timer = threading.Timer(FIRST_LOOK_QUIET, say)
    timer.daemon = True
    timer.start()
    try:
        yield
    except sa.exc.OperationalError as err:
        code = getattr(err.orig, "sqlite_errorcode", None)
        if not told.is_set() or not isinstance(code, int) or code & 0xFF != sqlite3.SQLITE_BUSY:
            raise
        raise StoreUnavailable(
            f"run store unavailable: another process held a lock on {path} that shuts out"
            f" readers too (PRAGMA locking_mode=EXCLUSIVE?) for {most:g} s: crontask cannot"
            " start before it has read the store's schema"
        ) from err
    finally:
        timer.cancel()


def _migrate_locked(conn: Connection) -> bool:
    """One try of the migration, under the migration's lock: whether it upgraded (not: another
    process made the store meanwhile, or a newer crontask migrated it)."""
    with conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
            # After the advisory lock, which is waited for as long as it takes.
            conn.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'"))
        # Read again under the lock: another process may have made the store meanwhile
        # (its tables are then crontask's), or something else may have.
        if (now := current_revision(conn)) != HEAD:
            refuse_unknown(conn, now)
        if now is not None and _ahead(now):  # a newer crontask migrated it meanwhile
            _run_on_newer(now)
            return False
        if now == HEAD:
            return False
        upgrade(conn, "head")
        return True


def _wait_for_tables(conn: Connection, tries: int) -> None:
    """Says which sessions hold crontask's tables (process id and application, never their
    query, which may hold a secret), then waits before the next try: 1 s, doubling to 30 s."""
    with conn.begin():
        rows = conn.execute(_HOLDERS, {"tables": sorted(metadata.tables)}).all()
    holders = [f"{pid} ({application or 'no application name'})" for pid, application in rows]
    wait = min(LOCK_RETRY_FIRST * 2 ** (tries - 1), LOCK_RETRY_MOST)
    log.warning(
        "run store schema upgrade waits: other sessions hold tables it changes",
        extra={
            "fields": {"sessions": ", ".join(holders) or "gone", "tries": tries, "next_in": wait}
        },
    )
    time.sleep(wait)


def _run_on_newer(current: str) -> None:
    log.info(
        "run store schema is a newer crontask's, which says this one may run on it",
        extra={"fields": {"revision": current, "knows": HEAD}},
    )
