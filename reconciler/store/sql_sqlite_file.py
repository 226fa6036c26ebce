"""The SQLite file of a run store: which file a URL names (a path, or a ``file:`` URI as
SQLite reads it), whether this SQLite can hold a store, how a reader opens a store at rest in a
folder it may not write, and the watch that keeps a store on the file it opened
(``SqliteFile``). The engine set-up that uses them is ``sql_schema``'s."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from pathlib import Path
from typing import Final
from urllib.parse import unquote_to_bytes

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util import asbool

from reconciler.store.base import StoreUnavailable

log = logging.getLogger("crontask.store")

_NEEDS_FILE: Final = "the SQL run store needs a file; use 'memory://' for a memory store"


def sqlite_file(u: sa.URL) -> Path:
    """The file SQLite opens for ``u``: its database, or with ``uri=true`` the path its
    ``file:`` URI names (``_uri_path``). Raises ValueError for none (memory, an empty path)."""
    database = u.database or ""
    options: list[tuple[str, str]] = []
    if is_uri(u) and database.startswith("file:"):
        database = _uri_path(database)
        options = _uri_options(_opened_name(u))
        if (why := _unlocked(u, options)) is not None:  # a writer is refused (refuse_unlocked)
            log.warning("%s; read so, what a crontask writes meanwhile may be read torn", why)
    memory = u.query.get("mode") == "memory" or ("mode", "memory") in options
    if not database or database == ":memory:" or memory:
        raise ValueError(_NEEDS_FILE)
    return Path(database)


def is_uri(u: sa.URL) -> bool:
    """Whether SQLAlchemy passes ``u``'s database to SQLite as a URI (its ``uri`` option, read
    as SQLAlchemy reads it)."""
    value = u.query.get("uri")
    if value is None:
        return False
    try:
        return bool(asbool(value if isinstance(value, str) else value[-1]))
    except ValueError:
        return False  # SQLAlchemy refuses it when it connects


def _uri_path(uri: str) -> str:
    """The file a ``file:`` URI names, as SQLite reads it: after ``file:``, an authority
    (``file://HOST/...``) empty or ``localhost`` (SQLite refuses any other), then the path up to
    the first ``?`` or ``#``, percent-decoded (once more: SQLAlchemy decoded the URL once), cut
    at a ``%00``. The checks must run on that file: on the text ``file:/...`` they made
    ``./file:/...`` under the cwd while SQLite opened the real file unchecked. Raises
    ValueError."""
    rest = uri.removeprefix("file:")
    if rest.startswith("//"):
        authority, slash, rest = rest[2:].partition("/")
        if authority not in ("", "localhost"):
            raise ValueError(
                f"the SQLite URI {uri!r} names a host ({authority}): SQLite opens only files "
                "of this host; give file:/PATH"
            )
        rest = slash + rest
    path = re.split(r"[?#]", rest, maxsplit=1)[0]
    return unquote_to_bytes(path).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _opened_name(u: sa.URL) -> str:
    """The name SQLAlchemy hands SQLite for ``u``: its database, then the URL's options the
    driver does not take itself (``?nolock=1`` in the URL's query reaches the URI so)."""
    cargs, _ = u.get_dialect()().create_connect_args(u)
    return str(cargs[0])


def _uri_options(uri: str) -> list[tuple[str, str]]:
    """The options of a ``file:`` URI, every one, as SQLite's ``sqlite3ParseUri`` reads them:
    after the first ``?`` and up to a ``#``, ``&``-separated, each ``%HH`` decoded, an empty
    name skipped, and a ``%00`` ending the name or value it is in (the rest of it ignored)."""
    query = re.split(r"#", uri, maxsplit=1)[0].partition("?")[2]
    options = []
    for part in query.split("&"):
        name, _, value = part.partition("=")
        name, value = _uri_text(name), _uri_text(value)
        if name:
            options.append((name, value))
    return options


def _uri_text(text: str) -> str:
    decoded = unquote_to_bytes(text).split(b"\0", 1)[0]
    return decoded.decode("utf-8", "surrogateescape")


# SQLite's locking, which lets several crontasks share one file, and a reader read it while a
# crontask writes: off with these options, two crontasks on one --db corrupted it within
# 30 s ("database disk image is malformed"), and an immutable reader reads pages torn by the
# writer. Only the default VFS, "unix", locks as the store needs: "unix-none" takes no lock,
# "unix-dotfile" has no shared memory (so no WAL: each write shuts out the readers, and a
# crash leaves its lock file behind), and "unix-excl" shuts out every other process (a second
# crontask, `crontask runs`), as would any other this SQLite was built with.
_UNLOCKING: Final = ("nolock", "immutable")
_VFS: Final = "unix"


def refuse_unlocked(url: str) -> None:
    """ValueError for a writer's SQLite URL with a URI option that turns SQLite's locking off
    (above), before anything is made. A reader (``crontask runs``) may use them: an immutable
    read is SQLite's only way to read a WAL store on read-only media (a snapshot, a backup)
    without making its -shm, and corrupts nothing but what it reads (``sqlite_file`` warns)."""
    try:
        u = sa.make_url(url)
    except exc.ArgumentError:
        return  # create_engine says what is wrong with it
    if u.get_backend_name() != "sqlite" or not is_uri(u):
        return
    if not (u.database or "").startswith("file:"):
        return
    if (why := _unlocked(u, _uri_options(_opened_name(u)))) is not None:
        raise ValueError(f"{why}: leave it out")


def _unlocked(u: sa.URL, options: list[tuple[str, str]]) -> str | None:
    """What in ``options`` (of ``u``) turns SQLite's locking off (None: nothing). Any of their
    occurrences counts (SQLite reads the first ``nolock``, the last ``vfs``)."""
    given = u.query.get("vfs")
    if isinstance(given, tuple):  # SQLAlchemy hands SQLite "vfs=('unix', 'unix-none')"
        return f"the SQLite URI option vfs is given {len(given)} times ({', '.join(given)})"
    for name, value in options:
        if name in _UNLOCKING and _sqlite_true(value):
            return (
                f"the SQLite URI option {name}={value} turns SQLite's locking off, and a store"
                " shared or read meanwhile is corrupted"
            )
        if name == "vfs" and value != _VFS:
            return (
                f"the SQLite URI option vfs={value}: the run store needs SQLite's default"
                f" VFS ({_VFS}), whose locks let processes share the file"
            )
    return None


def _sqlite_true(value: str) -> bool:
    """Whether SQLite may read ``value`` as true (``sqlite3GetBoolean``): a number (which it
    reads from its first digits, in hex after ``0x``: any but zeros is taken for true here, a
    superset of SQLite's), or on, yes, true in any case."""
    if value[:1].isdigit():
        return value.strip("0") != ""
    return value.lower() in ("on", "yes", "true")


# What the SQLite library must offer: UPDATE/INSERT ... RETURNING (3.35), and json_each (built
# in since 3.38, often compiled in before), through which last_outcomes asks for its tasks.
SQLITE_MINIMUM: Final = (3, 35, 0)
_JSON_PROBE: Final = "SELECT count(*) FROM json_each('[\"a\"]')"


def check_sqlite() -> None:
    """Refuse, with what is missing, an SQLite library the store cannot work with (else the
    first query that needs it would fail, long after start-up). Raises ValueError."""
    version = sqlite3.sqlite_version
    if sqlite3.sqlite_version_info < SQLITE_MINIMUM:
        minimum = ".".join(map(str, SQLITE_MINIMUM))
        raise ValueError(f"SQLite {version} is too old: the run store needs {minimum} or later")
    probe = sqlite3.connect(":memory:")
    try:
        probe.execute(_JSON_PROBE)
    except sqlite3.OperationalError as err:
        raise ValueError(
            f"SQLite {version} was built without its JSON functions ({err}): the run store"
            " needs them (built in since SQLite 3.38)"
        ) from None
    finally:
        probe.close()


def check_readable(path: Path) -> None:
    """Raise StoreUnavailable, saying why, if a reader cannot open ``path``: SQLite reads a
    WAL store through a -shm file it makes beside it (even ``mode=ro``), so one who may not
    write the folder reads a store only while its -shm is there (crontask running). Its own
    words were "attempt to write a readonly database". An immutable read would need no -shm,
    but a crontask starting meanwhile rewrites the file under it ("database disk image is
    malformed", or rows torn without a word)."""
    shm = path.with_name(f"{path.name}-shm")
    if not os.access(path.parent, os.W_OK) and not shm.exists():
        raise StoreUnavailable(
            f"cannot read {path}: SQLite needs write access to its folder for {shm.name} while"
            " crontask is stopped: read it as crontask's user, or while crontask runs"
        )


class SqliteFile:
    """The SQLite file a store opened, and nothing else, for as long as the engine lives.

    A ``runs.db`` deleted (or replaced) under a running crontask went unnoticed: the pooled
    connections wrote on into the unlinked file, then a new connection made a fresh empty
    file (0644) whose every write failed ("no such table"), and a restart started a new,
    empty history. So the file (there once ``create_engine`` returns: ``prepare_db`` made it,
    or a reader found it) is opened ``mode=rw`` (a missing one is an error, never made), and
    its identity (device, inode) is checked at each checkout and each new connection: another
    file, or none, is :class:`StoreUnavailable` (the runs' records wait, as in any outage),
    and the pool's connections to the old file are dropped."""

    def __init__(self, path: Path, *, uri: bool = False) -> None:
        self.path = path
        self.uri = uri
        self.identity = self._identity()
        if self.identity is None:
            raise StoreUnavailable(f"no run store at {path}")
        self._told = False

    def watch(self, engine: Engine) -> None:
        # Before _sqlite_on_connect: a replaced file must not be switched to WAL first.
        event.listen(engine, "do_connect", self._connect_args)
        event.listen(engine, "connect", self._on_connect)
        event.listen(engine, "checkout", self._on_checkout)

    def _identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def _gone(self) -> str | None:
        """Why the path no longer leads to the file first opened (None: it does)."""
        if self._identity() == self.identity:
            return None
        why = f"the run store file {self.path} was removed or replaced"
        if not self._told:  # once: the recorder tries again and again meanwhile
            self._told = True
            log.error(
                "%s; runs go on, their records wait (restore the file, or restart crontask"
                " to start a new history)",
                why,
            )
        return why

    def _connect_args(
        self,
        _dialect: Dialect,
        _record: ConnectionPoolEntry,
        cargs: list[str],
        cparams: dict[str, object],
    ) -> None:
        if self.uri:
            # The user's URI, with its options (cache, immutable, ...): it names this file.
            # Without a mode of its own, SQLite would make a missing file: rw makes it an error.
            given = str(cargs[0])
            if "mode=" not in given and "#" not in given:
                cargs[0] = f"{given}{'&' if '?' in given else '?'}mode=rw"
            return
        cargs[0] = f"{self.path.as_uri()}?mode=rw"
        cparams["uri"] = True

    def _on_connect(self, dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        if (why := self._gone()) is not None:
            raise sqlite3.OperationalError(why)  # the pool closes the connection

    def _on_checkout(
        self, _dbapi: DBAPIConnection, _record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        # One stat per checkout: a pooled connection still writes into the file it opened.
        if (why := self._gone()) is not None:
            # Every pooled connection goes; the new one fails in _on_connect (or mode=rw).
            raise exc.InvalidatePoolError(why)
