"""A state directory or run store that cannot be used, said in one line: what ``crontask run``
and the offline ``crontask runs`` print instead of a traceback."""

from __future__ import annotations

import contextlib
import re
import sys
import urllib.parse
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from reconciler import statedir
from reconciler.cli.terminal import printable
from reconciler.core.urls import redact_db_url
from reconciler.store import IncompatibleSchema, StoreUnavailable

# Exit statuses: what the user gave is wrong (a refused folder, a path that cannot be one, a
# URL that names no store), or the store is there but cannot be used now.
USAGE: int = 2
UNAVAILABLE: int = 1

_USERINFO_PASSWORD = re.compile(r"(://[^/@:]*):[^/@]*@")


@contextlib.contextmanager
def reported(db_url: str | None, state_dir: Path | None = None) -> Iterator[None]:
    """Turn a failure to open the state directory or the run store (``--db db_url``, else
    ``runs.db`` in ``state_dir``) into ``crontask: <message>`` on stderr and exit status 2 or
    1, never showing the URL's password: a URL whose options SQLAlchemy or the driver refuses
    is ``crontask: --db: ...`` and 2; a SQLite file that is no database, or a damaged one, is
    named, and 1. Anything else goes through."""
    if db_url and _raw_at(db_url):
        _exit(
            USAGE,
            "--db: the URL's password holds an '@' (or a '#', '?' or '/' before one): write "
            "them percent-encoded (%40, %23, %3F, %2F), or a part of it is taken for the host "
            "and shown in errors (and looked up in DNS)",
            db_url,
        )
    try:
        with warnings.catch_warnings():
            # SQLAlchemy drops an option its driver does not take (sqlite:///x.db?mode=ro
            # without uri=true) with a warning of two lines: the option is refused instead.
            warnings.filterwarnings("error", message=_IGNORED_OPTION)
            yield
    except statedir.Refused as err:
        _exit(USAGE, str(err), db_url)
    except ValueError as err:
        _exit(USAGE, f"run store {_shown(db_url)}: {err}", db_url)
    except (FileExistsError, FileNotFoundError, NotADirectoryError) as err:
        _exit(USAGE, f"cannot use the state directory: {_os_error(err)}", db_url)
    except OSError as err:
        _exit(UNAVAILABLE, f"cannot use the state directory: {_os_error(err)}", db_url)
    except (StoreUnavailable, IncompatibleSchema) as err:
        _exit(UNAVAILABLE, str(err), db_url)
    except Exception as err:
        if (broken := _not_a_store(err, db_url, state_dir)) is not None:
            _exit(UNAVAILABLE, broken, db_url)
        if (why := _option_refused(err)) is None:
            raise
        _exit(USAGE, f"--db: {why}", db_url)


def _raw_at(db_url: str) -> bool:
    """Whether a server's URL holds a password with a raw ``@`` (or a ``#``, ``?`` or ``/``
    before one), which SQLAlchemy ends at its first ``@``: the rest would be read as the host
    (``user:p@ss@db``, ``user:p@ss#x@db``) or as a host and a database (``user:p@ss/x@db/app``,
    ``user:p@ss?x@db/app``). A user name may hold ``@`` (``admin@server:pw@db``), and so may a
    database or a query value (``/my@db``): what follows their last ``@`` is no host and port.
    A SQLite URL names a file, whose path may hold any number."""
    scheme, sep, rest = db_url.partition("://")
    if not sep or scheme.split("+")[0].lower() == "sqlite":
        return False
    userinfo = re.match(r"[^:/]*:[^@]*@", rest)  # a user and a password, as SQLAlchemy reads them
    if userinfo is None:
        return False
    after = rest[userinfo.end() :]
    if "@" not in after:
        return False
    host = re.split(r"[/?]", after, maxsplit=1)[0]
    return "@" in host or re.search(r"[/:]", after.rsplit("@", 1)[1]) is not None


# SQLite's primary result codes for a file that is no database, and for a damaged one.
_SQLITE_NOTADB = 26
_SQLITE_CORRUPT = 11


def _not_a_store(err: Exception, db_url: str | None, state_dir: Path | None) -> str | None:
    """What to say of a SQLite file that is no database (another program's file, or one whose
    header is gone) or a damaged one, naming the file; ``None`` for anything else. SQLAlchemy
    raises these as a ``DatabaseError`` from its first statement, which nothing else caught."""
    sa = sys.modules.get("sqlalchemy.exc")
    orig = getattr(err, "orig", None)
    sqlite3 = sys.modules.get("sqlite3")
    if sa is None or sqlite3 is None or not isinstance(err, sa.DatabaseError):
        return None
    if not isinstance(orig, sqlite3.DatabaseError):
        return None
    code = (getattr(orig, "sqlite_errorcode", None) or 0) & 0xFF
    if code not in (_SQLITE_NOTADB, _SQLITE_CORRUPT):
        return None
    if db_url:
        # sqlite:///relative.db, sqlite:////absolute.db, then perhaps ?options
        where = db_url.partition(":///")[2].partition("?")[0] or redact_db_url(db_url)
    else:
        where = str(state_dir / "runs.db") if state_dir else "runs.db in the state directory"
    what = "not a crontask run store" if code == _SQLITE_NOTADB else "a damaged run store"
    return f"{where} is {what} (sqlite: {orig})"


_IGNORED_OPTION = "Query string argument"  # how SQLAlchemy's warning starts
# SQLAlchemy ends some messages with a link, on a line of its own.
_BACKGROUND = re.compile(r"\s*\(Background on this (error|warning) at: [^)]*\)\s*$")


def _option_refused(err: Exception) -> str | None:
    """What is wrong with the run store URL's options, when ``err`` says that: SQLAlchemy
    refusing them (``ArgumentError``: a port that is no number, hosts and ports that do not
    pair) or warning that it drops one the driver does not take; the driver refusing one
    before any server answered (a ``ProgrammingError`` with no SQLSTATE: ``invalid
    connection option "x"``); or the driver tripping over the type of one as it connects or
    runs the first statement (a ``TypeError`` raised in its code, bare or in a
    ``StatementError``: ``?prepare_threshold=x``, ``?row_factory=x``). ``None``: something
    else, which goes through."""
    sa = sys.modules.get("sqlalchemy.exc")  # not loaded: the error is none of its
    if sa is None:
        return None
    if isinstance(err, sa.SAWarning) and str(err).startswith(_IGNORED_OPTION):
        return _BACKGROUND.sub("", str(err).replace(" and are being ignored", ""))
    if isinstance(err, sa.ArgumentError):
        return _BACKGROUND.sub("", str(err))
    orig = getattr(err, "orig", None)
    if isinstance(err, sa.ProgrammingError) and getattr(orig, "sqlstate", None) is None:
        return _BACKGROUND.sub("", str(orig))
    cause = _driver_error(err, TypeError)
    if cause is not None:
        return f"an option of the URL is not of a type the driver takes ({cause})"
    return None


@contextlib.contextmanager
def reading(db_url: str | None) -> Iterator[None]:
    """Around reading the records of a store once it is open (within :func:`reported`): a
    value the driver cannot make into its column's type (SQLite takes any value in any
    column: an integer or a BLOB for a date in a store edited by hand) is a record crontask
    cannot read, ``crontask: run store ... holds a run record ...`` and exit status 1. As the
    store is opened, the driver's TypeError is an option of the URL's; here it is not, and it
    was said as one (``--db: ...`` when no --db was given)."""
    try:
        yield
    except Exception as err:
        cause = _driver_error(err, (TypeError, ValueError))
        if cause is None:
            raise
        _exit(
            UNAVAILABLE,
            f"run store {_shown(db_url)} holds a run record crontask cannot read, a value "
            f"of a type or form its column does not take ({printable(str(cause)[:200])}): "
            "was it edited by hand?",
            db_url,
        )


def _driver_error(
    err: Exception, kinds: type[Exception] | tuple[type[Exception], ...]
) -> Exception | None:
    """The error of one of ``kinds`` that the driver or SQLAlchemy raised, bare or in a
    ``StatementError``, that ``err`` is; ``None`` for anything else."""
    sa = sys.modules.get("sqlalchemy.exc")
    statement = sa is not None and isinstance(err, sa.StatementError)
    cause = getattr(err, "orig", None) if statement else err
    if isinstance(cause, kinds) and _raised_in_driver(err):
        return cause
    return None


def _raised_in_driver(err: BaseException) -> bool:
    # Where it was raised: a TypeError of crontask's own code is a bug, and goes through.
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    module = str(tb.tb_frame.f_globals.get("__name__", "")) if tb is not None else ""
    return module.partition(".")[0] in ("psycopg", "sqlite3", "sqlalchemy")


def _exit(code: int, message: str, db_url: str | None) -> NoReturn:
    # One line: a driver's message may run over several (one per address tried).
    line = "; ".join(part.strip() for part in _hidden(message, db_url).splitlines() if part)
    print(f"crontask: {line}", file=sys.stderr)
    raise SystemExit(code)


def _os_error(err: OSError) -> str:
    if err.strerror and err.filename is not None:
        return f"{err.filename}: {err.strerror}"
    return str(err)


def _shown(db_url: str | None) -> str:
    return redact_db_url(db_url) if db_url else "in the state directory"


def _hidden(message: str, db_url: str | None) -> str:
    """``message`` without the URL's password: the URL quoted whole is shown without it, and
    the password is hidden where a message quotes it (``_quoted_password``), not elsewhere.
    Hiding it wherever its letters appeared garbled crontask's own words when it was a common
    word (a password ``crontask`` made "this *** does not know", and hid the user name of the
    same spelling), and where the stars fell told which word the password is."""
    if not db_url:
        return message
    if "://" in db_url:  # quoted whole by a driver's message; a text without is not (SQLAlchemy)
        message = message.replace(db_url, _shown(db_url))
    password, bracketed = _password_texts(db_url)
    for secret in sorted(password, key=len, reverse=True):
        for where in _quoted_password(secret):
            message = where.sub(r"\1***\2", message)
    if bracketed:  # quoted by urlsplit's error, as repr() quotes it
        message = message.replace(repr(bracketed), "'***'")
    return _USERINFO_PASSWORD.sub(r"\1:***@", message)


def _quoted_password(secret: str) -> tuple[re.Pattern[str], ...]:
    """Where a message may quote the password ``secret``: in a URL's user info (``:secret@``,
    whatever the URL around it looks like: SQLAlchemy renders it unquoted), or after the word
    password (a connection option ``password=secret``, quoted or not; ``password secret``),
    as a whole word there."""
    s = re.escape(secret)
    after_word = rf"(password\s*[=:]?\s*['\"]?){s}(['\"]?)(?=$|[\s,;)])"
    return re.compile(rf"(:){s}(@)"), re.compile(after_word, re.IGNORECASE)


def _password_texts(db_url: str) -> tuple[set[str], str]:
    """The URL's password as a message may quote it (as written, and percent-decoded), and,
    when a ``[`` or ``]`` in it makes ``urlsplit`` look for an IPv6 host, the part between
    brackets that ``urlsplit``'s error quotes (else ""). Found by hand, as ``urlsplit`` finds
    it: it may refuse the URL."""
    netloc = re.split(r"[/?#]", db_url.partition("//")[2], maxsplit=1)[0]
    password = netloc.rpartition("@")[0].partition(":")[2]
    if not password:
        return set(), ""
    found = {text for text in (password, urllib.parse.unquote(password)) if text}
    bracketed = netloc.partition("[")[2].partition("]")[0]
    return found, bracketed if bracketed and bracketed in password else ""
