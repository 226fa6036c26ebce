"""Small helpers shared by the command modules, and the argument types that bound what the
command line takes: a bad value is one line on stderr and exit status 2, as argparse does for
the rest, never a traceback."""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from reconciler.core.runs import DNS1123_LABEL, RFC3339_PATTERN
from reconciler.core.urls import ENCODE_USERINFO, at_after_host, git_password, redact_url
from reconciler.sources.limits import (
    DEFAULT_MAX_FILE_SIZE,
    DEFAULT_MAX_TASKS,
    MAX_TASKS_RANGE,
    format_size,
)


class UsageError(Exception):
    """Options a command cannot work with, found after parsing (one needs another, two
    conflict): ``crontask`` says it as argparse says a bad option, the command's usage line and
    this message, and exits with status 2."""


_SIZE = re.compile(r"(\d{1,15})\s*([a-z]*)", re.IGNORECASE)
_SIZE_UNITS = {
    **{"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3},
    **{"ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2, "gi": 1024**3, "gib": 1024**3},
}
MAX_FILE_SIZE_RANGE = (1024, 1024**3)  # 1 KiB .. 1 GiB
DB_ENV: Final = "CRONTASK_DB"  # --db when the flag is absent (a password stays off argv)

_LABEL: Final = DNS1123_LABEL.strip("^$")
# The shapes the API checks too (reconciler/api/params.py; a test keeps them equal).
KEY_PATTERN: Final = f"^{_LABEL}/{_LABEL}$"
RUN_ID_PATTERN: Final = rf"^{_LABEL}\.{_LABEL}\.[0-9]{{8}}T[0-9]{{6}}(\.[0-9]{{6}})?Z$"
_MAX_TEXT: Final = 300  # longer than any key, run id or URL these options take
_EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
# The API's, with any number of fraction digits (RFC 3339 sets no limit; Go's RFC3339Nano and
# ``date --rfc-3339=ns`` write 9): fromisoformat reads more shapes than RFC 3339's.
_RFC3339: Final = re.compile(RFC3339_PATTERN.replace(r"{1,6}", "+", 1))
assert _RFC3339.pattern != RFC3339_PATTERN, "the API's fraction bound moved: spell it out here"
_PAST_MICROSECONDS: Final = re.compile(r"(\.[0-9]{6})[0-9]+")
_LATEST: Final = datetime(9000, 1, 1, tzinfo=UTC)


def task_key(text: str) -> str:
    """``NAMESPACE/NAME``, both DNS-1123 labels of at most 63 characters."""
    namespace, _, name = text.partition("/")
    if (
        len(text) > _MAX_TEXT
        or re.fullmatch(KEY_PATTERN, text) is None
        or max(len(namespace), len(name)) > 63
    ):
        raise argparse.ArgumentTypeError(
            f"expected NAMESPACE/NAME (lowercase letters, digits and '-', each at most 63), "
            f"got {text[:80]!r}"
        )
    return text


def label(text: str) -> str:
    if len(text) > 63 or re.fullmatch(DNS1123_LABEL, text) is None:
        raise argparse.ArgumentTypeError(
            f"expected a DNS-1123 label (lowercase letters, digits and '-', at most 63), "
            f"got {text[:80]!r}"
        )
    return text


def run_id(text: str) -> str:
    if len(text) > _MAX_TEXT or re.fullmatch(RUN_ID_PATTERN, text) is None:
        raise argparse.ArgumentTypeError(
            f"expected a run id such as ops.backup.20261127T010000Z, got {text[:80]!r}"
        )
    return text


def server_url(text: str) -> str:
    """An ``http://`` or ``https://`` URL with a host (and a valid port, if any), and nothing
    after it but a ``/``: the client appends the API's paths (``/api/v1/...``) to it, so with a
    path of its own every request would miss the API, and a query or fragment (even an empty
    one, a lone ``?`` or ``#``) would swallow them. A user name and password
    (``https://ops:pw@host``) may be given; no message shows them. An ``@`` after the host is
    refused without quoting the URL: an unencoded ``/``, ``?`` or ``#`` in a user name or
    password ends the host early (``https://tok3n/S3CRET@host`` has the host ``tok3n``), so
    what urlsplit took for the host and the path is the secret."""
    try:
        parts = urlsplit(text)
        # Before the port is read: the message below quotes the URL as urlsplit reads it,
        # which here is the secret and all.
        if text.count("@") > parts.netloc.count("@"):
            raise argparse.ArgumentTypeError(
                "expected http://HOST:PORT or https://HOST:PORT, got a URL with an '@' after "
                f"its host (not shown: it may hold a password; {ENCODE_USERINFO})"
            )
        ok = (
            len(text) <= _MAX_TEXT
            and parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and (parts.port is None or parts.port > 0)
            and parts.path in ("", "/")
            # Not parts.query or parts.fragment: those are "" for a lone "?" or "#" too.
            and "?" not in text
            and "#" not in text
        )
    except ValueError:  # a port out of range, an unclosed [
        ok = False
    if not ok:
        # Shown without what may be secret (a password, a token in the query).
        raise argparse.ArgumentTypeError(
            f"expected http://HOST:PORT or https://HOST:PORT (no path, query or fragment), "
            f"got {redact_url(text)[:80]!r}"
        )
    host = parts.hostname or ""
    if not host.isascii() or "xn--" in host.lower():
        _check_idna_host(text)
    return text


def _check_idna_host(text: str) -> None:
    """A host httpx reads by IDNA's rules (one not in ASCII, or an ``xn--`` one) that it can
    read: the client would fail with a traceback on ``http://xn--a.com`` (``xn--a`` decodes to
    U+0080), which IDNA refuses. httpx is loaded for such a host only, as parsing the command
    line loads nothing heavy."""
    import httpx

    try:
        httpx.URL(text).host  # noqa: B018 - reading the host is the check
    except (httpx.InvalidURL, UnicodeError):  # idna's errors are UnicodeErrors
        raise argparse.ArgumentTypeError(
            f"the host of {redact_url(text)[:80]!r} is not a valid IDNA (internationalized) name"
        ) from None


def listen_address(text: str) -> str:
    """``off``, or ``HOST:PORT`` (``[::1]:PORT`` for IPv6) whose port is 0-65535 in ASCII
    digits: ``str.isdigit`` takes ``²`` too, which ``int`` then refuses."""
    _, sep, port = text.partition("]:") if text.startswith("[") else text.rpartition(":")
    ok = text == "off" or (
        len(text) <= _MAX_TEXT
        and bool(sep)
        and 0 < len(port) <= 5
        and port.isascii()
        and port.isdigit()
        and int(port) <= 65535
    )
    if not ok:
        raise argparse.ArgumentTypeError(
            f"expected HOST:PORT (a port 0-65535) or 'off', got {text[:80]!r}"
        )
    if text != "off" and not _ipv6_in_brackets(text):
        # ``::1:8080`` could be the address ``::1:8080`` without a port, or ``::1`` with one.
        raise argparse.ArgumentTypeError(
            "an IPv6 address goes in brackets, as [::1]:8080, and brackets hold one only; "
            f"got {text[:80]!r}"
        )
    return text


def _ipv6_in_brackets(text: str) -> bool:
    """False for a host with a colon outside brackets, or brackets around no IPv6 address."""
    host = text.rpartition(":")[0]
    if not host.startswith("["):
        return ":" not in host
    try:
        ipaddress.IPv6Address(host[1:-1])
    except ValueError:
        return False
    return host.endswith("]")


def external_url(text: str) -> str:
    """--external-url: links to runs are made by adding paths (/runs/ID) to it, which after a
    query or a fragment would all lead to the page itself; and every notification carries such
    a link, so a user name or password in it would go to every receiver. The rest is checked
    at start-up, as receivers' URLs are."""
    if "?" in text or "#" in text:  # not quoted: it may hold a password
        raise argparse.ArgumentTypeError(
            "a query or fragment (?, #) has no place in it; links to runs add paths to it"
        )
    if "@" in text.partition("//")[2].partition("/")[0]:
        raise argparse.ArgumentTypeError(
            "a user name or password (user:password@) has no place in it: every notification "
            "carries links to runs made from it; give the page's address alone"
        )
    return text


def git_url(text: str) -> str:
    """A repository URL git can be given and urllib can split. A URL urllib refuses (a ``[``
    or ``]`` in a password makes it look for an IPv6 host) is refused here, without quoting
    it: it may hold a password. So is one with an ``@`` after its host: a ``/`` in a user name
    or password (``https://tok3n/S3CRET@host``) ends the authority there, for urllib and git
    alike, and the fetch would go to the host ``tok3n``, the password in its path. scp-like
    addresses and local paths (no ``//``) pass, but not one that begins with ``-``: git would
    read it as an option (``--upload-pack=CMD`` runs CMD), and a local folder so named is
    reached as ``./-name``. Nor one with a user:password@ and no ``//`` right before it
    (:func:`git_password`: ``oauth2:TOKEN@host:path``, ``https:/u:TOKEN@host/r.git``): git
    takes the text before the first ``:`` for the host, so it cannot fetch it, and no URL rule
    finds the password to hide it."""
    if text.startswith("-"):
        raise argparse.ArgumentTypeError(
            "a repository URL or path cannot begin with '-': write ./-name for a local folder"
        )
    if git_password(text):  # not quoted: it holds a password
        raise argparse.ArgumentTypeError(
            "a user name and password (user:password@) with no '//' right before them: git "
            "reads the text before the first ':' as the host and cannot fetch it; write "
            "https://host/path (or git@host:path for ssh) and give a token with "
            "--git-token-file or --git-token-env (an scp-like path holding an '@' before any "
            "'/', an '@' a folder follows, or an '@' and then ':', reads as one: write it as an "
            "ssh:// URL, the '@' as %40)"
        )
    if "//" in text:
        try:
            parts = urlsplit(text)
            # Before the port: it may be a piece of the password. (file:///srv/a@b has no host.)
            if parts.netloc and at_after_host(parts):
                raise argparse.ArgumentTypeError(
                    f"an '@' after the URL's host: {ENCODE_USERINFO}; in a path, write '@' as %40"
                )
            parts.port  # noqa: B018 - parsing the port is the check
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{redact_url(text)[:200]!r} is not a URL crontask can read (a '[' or ']' in "
                "a user name or password is written %5B or %5D; a port is at most 65535)"
            ) from None
        if parts.query or parts.fragment:
            # git appends its own paths (/info/refs?service=...) to the URL as written: after
            # a query, the server never sees them, and the fetch cannot work.
            raise argparse.ArgumentTypeError(
                f"{redact_url(text)[:200]!r}: a repository URL has no query or fragment (git "
                "adds its paths after them); give a token with --git-token-file or "
                "--git-token-env"
            )
    return text


def git_ref(text: str) -> str:
    """A branch, tag or commit name git could not read as an option or a range."""
    # Here, not at the top: only `run` takes a git ref, and the git source loads subprocess.
    from reconciler.sources.gitnames import check_ref

    try:
        if len(text) > _MAX_TEXT:
            raise ValueError(f"invalid git ref: {text[:80]!r}... (longer than {_MAX_TEXT})")
        check_ref(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def git_path(text: str) -> str:
    """A folder inside the repository, as a clean relative path ("" for its root)."""
    from reconciler.sources.gitnames import clean_path

    try:
        if len(text) > _MAX_TEXT:
            raise ValueError(f"git path {text[:80]!r}... is longer than {_MAX_TEXT}")
        return clean_path(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def timestamp(text: str) -> datetime:
    """An RFC 3339 time with an offset (``Z`` or ``+01:00``), from 1970 to 9000 (so that the
    fire times after it never leave the calendar). A fraction past the microsecond is cut
    there, never rounded into the next second: the slots are whole microseconds, so those
    strictly after the time given are those strictly after the cut one."""
    try:
        cut = _PAST_MICROSECONDS.sub(r"\1", text, count=1)
        value = datetime.fromisoformat(cut.replace("Z", "+00:00").replace("z", "+00:00"))
        ok = value.tzinfo is not None and _EARLIEST <= value.astimezone(UTC) < _LATEST
        ok = ok and _RFC3339.fullmatch(text) is not None
    except (ValueError, OverflowError):
        ok = False
    if len(text) > 64 or not ok:
        raise argparse.ArgumentTypeError(
            f"expected an RFC 3339 time with an offset between 1970 and 9000, e.g. "
            f"2027-03-28T00:00:00+01:00, got {text[:80]!r}"
        )
    return value


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argument type: an integer in ``low..high``."""

    def parse(text: str) -> int:
        try:
            value = int(text) if len(text) <= 20 else None
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"expected a whole number from {low} to {high}, got {text[:40]!r}"
            )
        return value

    return parse


def path_arg(text: str) -> Path:
    """An argument type: a path that is not empty. ``Path("")`` is ``.``, the current
    directory: an empty ``--state-dir`` (a variable that is unset, in a script) would be
    taken for it, and made private (mode 0700)."""
    if not text:
        raise argparse.ArgumentTypeError("expected a path, got an empty one ('')")
    return Path(text)


def print_json(value: object) -> None:
    """``value`` as indented JSON on stdout, as ``json.dumps(value, indent=2)`` makes it, but
    written as it is encoded: with an indent, ``json.dumps`` holds every piece of a large
    answer in a list before joining them (gigabytes for millions of values). Pieces are
    written 8 192 at a time: one ``write`` each took four times as long."""
    import json

    pieces: list[str] = []
    for piece in json.JSONEncoder(indent=2).iterencode(value):
        pieces.append(piece)
        if len(pieces) >= 8192:
            sys.stdout.write("".join(pieces))
            pieces.clear()
    sys.stdout.write("".join(pieces) + "\n")


MAX_CELL: Final = 200  # characters of a cell (a key is at most 127, a run id 157): ids stay whole


def print_table(header: list[str], rows: Iterable[list[str]]) -> None:
    """``header`` and ``rows`` as aligned columns on stdout (:func:`table_lines`)."""
    write = sys.stdout.write
    for line in table_lines(header, rows):
        write(line + "\n")


def print_table_pages(header: list[str], pages: Iterable[Iterable[list[str]]]) -> None:
    """``header`` and ``pages`` of rows as :func:`print_table` prints them, but written and
    flushed a page at a time: the first lines are out before the next page is read, and only
    one page is held (``crontask runs --limit 100000 | head -1``). A column is as wide as its
    widest cell so far, so a table whose first page holds each column's widest cell (one
    page: every short history) is the one :func:`print_table` prints; a later page with a
    wider cell widens that column from that page on (the lines printed before stay)."""
    widths = [len(h) for h in header]
    lines: list[list[str]] = [header]  # the header is printed with the first page
    for page in pages:
        cut_rows = [[_cell(c) for c in row] for row in page]
        if cut_rows:
            columns = zip(*cut_rows, strict=True)
            widths = [max(w, *map(len, c)) for w, c in zip(widths, columns, strict=True)]
        for line in [*lines, *cut_rows]:
            sys.stdout.write(_line(line, widths) + "\n")
        lines = []
        sys.stdout.flush()  # a pipe's reader has this page before the next one is asked for
    if lines:  # no page: the header alone, as print_table prints no rows
        sys.stdout.write("  ".join(header).rstrip() + "\n")


def table_lines(header: list[str], rows: Iterable[list[str]]) -> Iterator[str]:
    """``header`` and ``rows`` as lines of aligned columns, each cell cut to :data:`MAX_CELL`
    characters (its last three ``...``). A column is as wide as its widest cell: uncut, one
    server's string of 4 096 characters (24 576 once escaped) padded every row of a list of
    20 000 to it, 2 GB of output built as one string. Cells are cut as rows arrive, so a row
    of long strings is held whole only while it is cut; the lines are made one at a time."""
    cut_rows = [[_cell(c) for c in row] for row in rows]
    widths = [max(map(len, column)) for column in zip(header, *cut_rows, strict=False)]
    for line in [header, *cut_rows]:
        yield _line(line, widths)


def _line(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def _cell(text: str) -> str:
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."


def add_state_args(parser: argparse.ArgumentParser) -> None:
    """``--state-dir`` and ``--db`` (read from ``$CRONTASK_DB`` when not given; the flag wins)."""
    parser.add_argument(
        "--state-dir",
        type=path_arg,
        default=Path(".crontask"),
        help="where the run history and API-created tasks live (default: ./.crontask)",
    )
    # Every local user can read a process's command line: a password belongs in the environment
    # (CRONTASK_DB, or libpq's PGPASSWORD / ~/.pgpass), which only its owner can read.
    parser.add_argument(
        "--db",
        metavar="URL",
        default=os.environ.get(DB_ENV) or None,
        help="run store URL instead of the state dir's SQLite file, "
        "e.g. sqlite:////var/lib/crontask/runs.db or postgresql+psycopg://user@host/db "
        f"(default: ${DB_ENV}; keep a password out of the command line: set {DB_ENV}, "
        "or PGPASSWORD, or use ~/.pgpass)",
    )


def parse_size(text: str) -> int:
    """Bytes in ``512KiB``, ``2MiB``, ``1Mi``, ``1MB`` (decimal), ``1048576``; ValueError with
    a message for the user otherwise."""
    found = _SIZE.fullmatch(text.strip())
    unit = found.group(2).lower() if found else ""
    if not found or unit not in _SIZE_UNITS:
        raise ValueError(f"invalid size {text!r} (examples: 512KiB, 2MiB, 1048576)")
    return int(found.group(1)) * _SIZE_UNITS[unit]


def size_arg(text: str) -> int:
    try:
        size = parse_size(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    low, high = MAX_FILE_SIZE_RANGE
    if not low <= size <= high:
        raise argparse.ArgumentTypeError(
            f"{text!r} is out of range ({format_size(low)} to {format_size(high)})"
        )
    return size


def add_source_bounds_args(parser: argparse.ArgumentParser) -> None:
    """--max-file-size and --max-tasks: what a folder or git source reads, and what each
    source holds."""
    parser.add_argument(
        "--max-file-size",
        type=size_arg,
        default=DEFAULT_MAX_FILE_SIZE,
        metavar="SIZE",
        help="refuse definition files larger than this, unread (default: 1MiB; e.g. 512KiB, "
        "2MiB); a larger file is a definition error that keeps its tasks' last good version",
    )
    parser.add_argument(
        "--max-tasks",
        type=bounded_int(*MAX_TASKS_RANGE),
        default=DEFAULT_MAX_TASKS,
        metavar="N",
        help=f"the tasks each source may hold: the folders given, the git repository, the "
        f"CronTasks (default: {DEFAULT_MAX_TASKS:,}); a file that would take it past them is a "
        "definition error that keeps its tasks' last good version, a CronTask past them is "
        "refused until an older one is deleted (about 6 KiB of memory a task)",
    )
