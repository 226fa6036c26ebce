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
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

__all__ = ["HEAD", "current_revision", "known_revisions", "upgrade"]

HEAD: Final = "0005"
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
