"""The SQLite file of a run store: which file a URL names (a path, or a ``file:`` URI as
SQLite reads it), whether this SQLite can hold a store, how a reader opens a store at rest in a
folder it may not write, and the watch that keeps a store on the file it opened
(``SqliteFile``). The engine set-up that uses them is ``sql_schema``'s."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import stat
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Final
from urllib.parse import quote, unquote_to_bytes

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Dialect, Engine, ExceptionContext
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util import asbool

from reconciler import statedir
from reconciler.store.base import IncompatibleSchema, StoreUnavailable
from reconciler.store.sql_errors import WHERE_NOTE
from reconciler.store.sql_sqlite_contents import read_only, refuse_foreign
from reconciler.store.sql_sqlite_holders import refuse_shared

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
    malformed", or rows torn without a word), and it ignores a -wal (the latest runs): it is
    advised only on a read-only file system, for a file with no -wal to read."""
    shm = path.with_name(f"{path.name}-shm")
    if not os.access(path.parent, os.W_OK) and not shm.exists():
        if os.statvfs(path.parent).f_flag & os.ST_RDONLY:  # no user may write there
            wal = path.with_name(f"{path.name}-wal")
            if wal.exists() and wal.stat().st_size:  # an immutable read would not see it
                raise StoreUnavailable(
                    f"cannot read {path}: its file system is read-only, and SQLite needs to"
                    f" make {shm.name} beside it to read {wal.name}, which holds its latest"
                    f" writes: copy {path.name} and {wal.name} to a folder you may write, and"
                    " read the copy"
                )
            # Quoted for SQLite's URI, then for SQLAlchemy's URL, each of which decodes %XX.
            uri = quote(f"{path}", safe="/").replace("%", "%25")
            raise StoreUnavailable(
                f"cannot read {path}: its file system is read-only, and SQLite needs to make"
                f" {shm.name} beside it while crontask is stopped: read it with"
                f" --db 'sqlite:///file:{uri}?uri=true&immutable=1'"
            )
        raise StoreUnavailable(
            f"cannot read {path}: SQLite needs write access to its folder for {shm.name} while"
            " crontask is stopped: read it as crontask's user, or while crontask runs"
        )


def no_store(path: Path) -> StoreUnavailable:
    """The error for a store file that is not there, or is no file SQLite can hold a store in:
    "no run store at" means that no crontask run used it (the README's words), so a path with
    something else at it (a FIFO, a socket, a device, a dangling link) says what it is."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if not os.path.lexists(path):
            return StoreUnavailable(f"no run store at {path}")
        return StoreUnavailable(f"{path} is a symbolic link to nothing, not a run store")
    except OSError as err:
        return StoreUnavailable(f"cannot use the run store {path}: {err.strerror}")
    return StoreUnavailable(f"{path} is not a regular file ({_kind(st.st_mode)})")


_KINDS: Final = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a directory"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), f"file type {stat.S_IFMT(mode):o}")


# SQLite's primary result codes for a file that cannot be written or read now: full (its
# file system, or a quota), an I/O error (on a full tmpfs SQLite says "disk I/O error" as it
# maps its -shm), a file it cannot open. Their words name no file: the store's outage says
# which, and for the first two how much room its file system has (``SqliteFile._on_error``).
_FULL: Final = 13
_ROOM_CODES: Final = frozenset({_FULL, sqlite3.SQLITE_IOERR})
_FILE_CODES: Final = _ROOM_CODES | {sqlite3.SQLITE_CANTOPEN}


def _free_space(folder: Path) -> str:
    try:
        st = os.statvfs(folder)
    except OSError:
        return ""
    free = st.f_bavail * st.f_frsize
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if free < 1024 or unit == "GiB":
            break
        free //= 1024
    return f", {free} {unit} free on its file system"


def vet(path: Path) -> None:
    """Whether a writer may take the SQLite file now at ``path`` for its store, as it would
    at start: the file checks of ``statedir.prepare_db`` (a regular file of this user's, never
    a link; made private if others may read it), and a schema this crontask runs on as it is
    (``migrations.check``: one that would need migrating, or none, is refused, never changed),
    whose first entries of the runs and of each index read (``_first_entries_read``).
    Raises statedir.Refused, IncompatibleSchema, StoreUnavailable, OSError, saying why."""
    # migrations imports sql_schema, which imports this module.
    from reconciler.store import migrations

    statedir.check_db(path, refuse_foreign)  # another's database: refused as found
    engine = read_only(path)
    try:
        migrations.check(engine)
        _first_entries_read(engine)
    except exc.DBAPIError as err:
        raise StoreUnavailable(f"sqlite: {err.orig}") from None
    finally:
        engine.dispose()


def _first_entries_read(engine: Engine) -> None:
    """Read the first entry of the runs and of each index, as readiness does (``sql_ping``):
    a few pages, however big the file. A backup damaged there (its header and schema whole)
    was taken, and every claim after it failed, "its SQLite file is damaged"; only a stop,
    the records waiting lost, ended that. Raises StoreUnavailable, saying so."""
    # sql_ping imports sql_schema, which imports this module.
    from reconciler.store import sql_ping

    try:
        with engine.connect() as conn:
            sql_ping.check(conn, sqlite=True)
    except exc.DBAPIError as err:
        raise StoreUnavailable(
            f"the file is damaged ({err.orig}); put another backup in its place"
        ) from None


def _close_held(held: list[int]) -> None:
    if held[0] >= 0:
        os.close(held[0])
        held[0] = -1


def release(engine: Engine) -> None:
    """Let go of the file a store's ``engine`` watches (``SqliteFile.close``), if any."""
    if (watched := _WATCHED.pop(engine, None)) is not None:
        watched.close()


class SqliteFile:
    """The SQLite file a store opened, and nothing else, for as long as the engine lives.

    A ``runs.db`` deleted (or replaced) under a running crontask went unnoticed: the pooled
    connections wrote on into the unlinked file, then a new connection made a fresh empty
    file (0644) whose every write failed ("no such table"), and a restart started a new,
    empty history. So the file (there once ``create_engine`` returns: ``prepare_db`` made it,
    or a reader found it) is opened ``mode=rw`` (a missing one is an error, never made), and
    its identity (device, inode) is checked at each checkout and each new connection: another
    file, or none, is :class:`StoreUnavailable` (the runs' records wait, as in any outage),
    and the pool's connections to the old file are dropped.

    A writer's store takes the file found at the path again (``vet``: a backup restored with
    ``cp``, a new inode, was never used, and the records waiting were lost at the stop) once
    no process has the old file open, nor what SQLite left of it at the path
    (``sql_sqlite_holders``), before a connection opens it. ``vet`` None (a reader): never;
    it reads for seconds. The file taken is held (``_hold``), so that its (device, inode)
    stays its own."""

    def __init__(
        self, path: Path, *, uri: bool = False, vet: Callable[[Path], None] | None = None
    ) -> None:
        self.path = path
        self.uri = uri
        self._vet = vet
        self._held = [-1]  # the descriptor of _hold, closed with this object
        weakref.finalize(self, _close_held, self._held)
        identity = self._hold()
        if identity is None:
            raise no_store(path)
        self.identity = identity
        self._lost = False
        self._told = False
        self._refused: tuple[tuple[int, int], str] | None = None  # said once per file and reason

    def watch(self, engine: Engine) -> None:
        # Before _sqlite_on_connect: a replaced file must not be switched to WAL first.
        event.listen(engine, "do_connect", self._connect_args)
        event.listen(engine, "connect", self._on_connect)
        event.listen(engine, "checkout", self._on_checkout)
        event.listen(engine, "handle_error", self._on_error)
        _WATCHED[engine] = self

    def close(self) -> None:
        """Let the file go (the store is closed): held, a removed file's space stays taken."""
        _close_held(self._held)

    def _hold(self) -> tuple[int, int] | None:
        """Hold the file at the path (None: none there), and say which it is. Held, its inode
        is given to no other file: a backup copied in after the old file was deleted and
        closed got the same (device, inode), and passed for it. An ``O_PATH`` descriptor: its
        closing leaves SQLite's locks on the file in place (``statedir._held``). A writer's
        is not followed through a link (a link put there after ``vet`` is not the file)."""
        flags = os.O_PATH | os.O_CLOEXEC | (os.O_NOFOLLOW if self._vet else 0)
        try:
            fd = os.open(self.path, flags)
        except FileNotFoundError:
            return None
        st = os.fstat(fd)
        _close_held(self._held)
        self._held[0] = fd
        return st.st_dev, st.st_ino

    def _identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):  # none there, or its folder gone
            return None
        return st.st_dev, st.st_ino

    def _gone(self) -> str | None:
        """Why the path no longer leads to the file taken (None: it does). Lost once, it is
        so until a file is taken again (``_back``), the same one put back included: its mode
        or its schema may have changed while it was away."""
        if not self._lost and self._identity() == self.identity:
            return None
        self._lost = True
        why = f"the run store file {self.path} was removed or replaced"
        if not self._told:  # once: the recorder tries again and again meanwhile
            self._told = True
            # A writer takes a file put back at the path (_back); a reader reads for seconds.
            back = "put the file back, or a backup of it" if self._vet else "restore the file"
            log.error(
                "%s; runs go on, their records wait (%s; or restart crontask to start a new"
                " history)",
                why,
                back,
            )
        return why

    def _back(self) -> bool:
        """Whether a file found at the path is taken for the store from now on (see the
        class); why not is said once for each file and reason."""
        found = self._identity()
        if self._vet is None or found is None:
            return False
        try:
            # The same identity: the file itself put back (``mv``), checked all the same.
            if found != self.identity and not refuse_shared(self.identity, self.path):
                return False  # ours close at their next checkout (the pool was invalidated)
            self._vet(self.path)
        except (statedir.Refused, IncompatibleSchema, StoreUnavailable, OSError) as err:
            if self._refused != (found, str(err)):
                self._refused = (found, str(err))
                log.error(
                    "a file is at %s again, not taken for the run store: %s; the records"
                    " keep waiting",
                    self.path,
                    err,
                )
            return False
        if self._hold() != found:  # replaced again while it was checked
            return False
        other = " (a different file)" if found != self.identity else ""
        self.identity, self._lost, self._told, self._refused = found, False, False, None
        log.warning(
            "run store file is back%s: the records waiting are written to it",
            other,
            extra={"fields": {"path": str(self.path)}},
        )
        return True

    def _connect_args(
        self,
        _dialect: Dialect,
        _record: ConnectionPoolEntry,
        cargs: list[str],
        cparams: dict[str, object],
    ) -> None:
        # A file found at the path is taken (_back) before SQLite opens it, never after: the
        # connection that opened it may have opened another (a link, a file renamed in while
        # it was checked). Not taken, it is not opened.
        if (why := self._gone()) is not None and not self._back():
            raise sqlite3.OperationalError(why)
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
        # What SQLite opened must be the file taken: the path changed since (_connect_args)
        # and it may be on another.
        if (why := self._gone()) is not None:
            raise sqlite3.OperationalError(why)  # the pool closes the connection

    def _on_checkout(
        self, _dbapi: DBAPIConnection, _record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        # One stat per checkout: a pooled connection still writes into the file it opened.
        if (why := self._gone()) is not None:
            # Every pooled connection goes; the new one fails in _on_connect (or mode=rw).
            raise exc.InvalidatePoolError(why)

    def _on_error(self, context: ExceptionContext) -> None:
        # SQLite's words for a full disk or an I/O error name no file (translated_errors).
        err = context.original_exception
        code = getattr(err, "sqlite_errorcode", None)
        if not isinstance(code, int) or (code & 0xFF) not in _FILE_CODES:
            return
        room = _free_space(self.path.parent) if (code & 0xFF) in _ROOM_CODES else ""
        with contextlib.suppress(AttributeError):  # a driver's error that takes no attribute
            setattr(err, WHERE_NOTE, f" ({self.path}{room})")


# The SqliteFile that watches each engine (its listeners hold it), for ``release``.
_WATCHED: Final[weakref.WeakKeyDictionary[Engine, SqliteFile]] = weakref.WeakKeyDictionary()
