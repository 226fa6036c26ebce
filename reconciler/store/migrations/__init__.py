"""Schema versioning for the SQL run store, with Alembic, run programmatically.

There is no ``alembic.ini``: :func:`upgrade` builds the Alembic config in code, and ``env.py``
only accepts a connection handed to it through ``config.attributes["connection"]``, so the
migrations always run inside the caller's transaction (which is what makes concurrent opens safe,
see :func:`reconciler.store.sql.SqlRunStore.open`).

Revisions live in ``versions/``, one file each, ids ``0001``, ``0002``, ... in order. A revision
is never edited once released; changes are new revisions.
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Final, NoReturn

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from reconciler.store.base import IncompatibleSchema, StoreUnavailable
from reconciler.store.sql_schema import BEGIN_OPTION

__all__ = ["HEAD", "check", "current_revision", "known_revisions", "migrate", "upgrade"]

log = logging.getLogger("crontask.store")
_PG_MIGRATION_LOCK: Final = 0x6372_6F6E_7461_736B  # "crontask": the advisory lock for upgrades

HEAD: Final = "0006"
"""The revision this code reads and writes; the contract suite checks it is the script head."""

_HERE = Path(__file__).resolve().parent


def _config() -> Config:
    cfg = Config()
    # configparser interpolation: a literal '%' in the install path would break the option.
    cfg.set_main_option("script_location", str(_HERE).replace("%", "%%"))
    return cfg


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every revision id this code knows about (cached: the files do not change at runtime)."""
    script = ScriptDirectory.from_config(_config())
    return frozenset(rev.revision for rev in script.walk_revisions())


def current_revision(connection: Connection) -> str | None:
    """The database's revision, ``None`` if it was never migrated (no ``alembic_version``)."""
    heads = MigrationContext.configure(connection).get_current_heads()
    if len(heads) > 1:
        raise RuntimeError(f"the run store schema has several heads: {heads}")
    return heads[0] if heads else None


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Migrate to ``revision`` on ``connection``, inside the transaction the caller holds."""
    cfg = _config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


def downgrade(connection: Connection, revision: str) -> None:
    """Migrate down to ``revision`` (for tests and manual recovery; crontask never does this)."""
    cfg = _config()
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, revision)


def check(engine: Engine) -> None:
    """For a reader (``crontask runs``), who changes nothing: the database of ``engine`` must be
    at :data:`HEAD` already. Upgrading it would take the migration's lock under a running
    crontask, and leave an older crontask on that store unable to start. IncompatibleSchema
    otherwise (StoreUnavailable for a database no crontask has used)."""
    with engine.connect() as conn, conn.begin():
        current = current_revision(conn)
    if current == HEAD:
        return
    if current is None:
        raise StoreUnavailable("no run store in that database (no crontask run has used it)")
    if current not in known_revisions():
        _newer(current)
    raise IncompatibleSchema(
        f"the run store schema is at revision {current!r}, older than this crontask's "
        f"{HEAD!r}: read it with the crontask that writes it, or let this version's "
        "`crontask run` upgrade it (a reader changes nothing)"
    )


def _newer(current: str) -> NoReturn:
    raise IncompatibleSchema(
        f"the run store schema is at revision {current!r}, which this crontask does not "
        f"know (it knows {sorted(known_revisions())}); it was written by a newer crontask"
    )


def migrate(engine: Engine) -> None:
    """Bring the database of ``engine`` to :data:`HEAD`, once however many processes open it at
    once (SQLite's write lock, PostgreSQL's advisory lock); IncompatibleSchema if a newer
    crontask wrote it."""
    known = known_revisions()
    with engine.connect() as conn:
        with conn.begin():
            current = current_revision(conn)
        if current == HEAD:
            return  # the common case: no lock taken
        if current is not None and current not in known:
            _newer(current)
        if engine.dialect.name == "sqlite":
            conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
            # Said before and after: an index is built over the whole history, a minute or more
            # for millions of records, and nothing else starts meanwhile.
            fields = {"from": current, "to": HEAD}
            if current is not None:
                log.info("run store schema upgrading", extra={"fields": fields})
            started = time.monotonic()
            upgrade(conn, "head")
        if current is not None:
            seconds = round(time.monotonic() - started, 1)
            log.info("run store schema upgraded", extra={"fields": {**fields, "seconds": seconds}})
