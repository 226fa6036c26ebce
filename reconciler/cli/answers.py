"""A server's answer as JSON, within what it may cost: the client's (:mod:`~reconciler.cli.client`)
bounds are in bytes, but ``{}`` is 3 bytes of JSON and a 64-byte dict once parsed, so that a
list's 256 MiB of answers took 6.5 GB of memory. An answer's JSON values are counted before it
is parsed (:func:`json_values`), and the client refuses it past its bound; ``NaN`` and
``Infinity``, which are no JSON and which ``--json`` printed as they were, are refused too, and
so is a number too large for a float (``1e400``), which Python reads as ``Infinity``.
What is refused is a :class:`RemoteError` (one line; of a success's body, an
:class:`UnreadableAnswer`, which says the number refused), naming the server as shown (without the
password or token its URL may hold); an error the API answered is a :class:`RemoteProblem`,
which also keeps its status, problem type and ``Retry-After`` for a command to act on."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final, NoReturn

from reconciler.cli.terminal import printable, shown
from reconciler.core.urls import redact_url

_MAX_LINE: Final = 2000  # of an error line made from a problem's fields
_STRING: Final = re.compile(rb'"[^"]*"')  # once its escaped quotes are gone
_PUNCTUATION: Final = (b"{", b"[", b",", b":")


class RemoteError(Exception):
    """The API could not be reached or answered with an error; ``str()`` is one clear line."""


class UnreadableAnswer(RemoteError):
    """A success (2xx) whose body cannot be read: what was asked may have been done, so a
    command that changes something (``trigger``) must not say or assume it was not."""


class RemoteProblem(RemoteError):
    """An error status the server answered: ``kind`` is its problem's ``type`` (``None`` when
    the body says none), ``retry_after`` the seconds its ``Retry-After`` asks to wait."""

    def __init__(self, line: str, status: int, kind: str | None, retry_after: float | None) -> None:
        super().__init__(line)
        self.status = status
        self.kind = kind
        self.retry_after = retry_after


def problem_type(content: bytes, readable: bool) -> str | None:
    """The ``type`` of a problem+json body, if it has one that is a string."""
    try:
        problem = _loads(content) if readable else None
    except (ValueError, RecursionError):
        return None
    kind = problem.get("type") if isinstance(problem, dict) else None
    return kind if isinstance(kind, str) else None


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """The seconds a ``Retry-After`` header asks for (RFC 9110 §10.2.3: whole seconds, or an
    HTTP date: 0 once past), at most a day; ``None`` when absent or unreadable."""
    text = (value or "").strip()
    if text.isascii() and text.isdigit():
        return float(min(int(text[:6]), 86_400))
    try:
        when = parsedate_to_datetime(text) if text else None
    except (TypeError, ValueError, IndexError, OverflowError):  # Overflow: a year past a C long
        return None
    if when is None or when.tzinfo is None:
        return None
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return float(min(max(0, round(seconds)), 86_400))


def json_values(content: bytes, bound: int) -> int:
    """How many JSON values ``content`` holds at most: one for each ``{``, ``[``, ``,`` and
    ``:`` outside strings, and the first. Every value but the first follows one of them (a
    container's first element counts as its container), so parsing makes at most this many
    objects. Counted at the speed of ``bytes.count``; only a count over ``bound`` is made again
    without the strings (a command's commas are no values), which is slower."""
    found = _punctuation(content)
    if found <= bound:
        return found
    # Without escaped backslashes, then escaped quotes, every string is "[^"]*".
    bare = content.replace(b"\\\\", b"").replace(b'\\"', b"")
    return _punctuation(_STRING.sub(b"", bare))


def _punctuation(content: bytes) -> int:
    return sum(content.count(p) for p in _PUNCTUATION) + 1


def decode(content: bytes, server: str) -> dict[str, Any]:
    """``content``, a success's body, as a JSON object, or :class:`UnreadableAnswer` naming
    ``server`` as shown (a number refused is said, with why)."""
    try:
        body = _loads(content)
    except json.JSONDecodeError:
        raise UnreadableAnswer(f"{server} answered with something that is not JSON") from None
    except ValueError as err:  # _no_constant, _finite: JSON but for that number, said
        raise UnreadableAnswer(f"{server} answered a number crontask refuses: {err}") from None
    except RecursionError:
        raise UnreadableAnswer(f"{server} answered with JSON nested too deep") from None
    if not isinstance(body, dict):
        raise UnreadableAnswer(f"{server} answered with unexpected JSON")
    return body


def _loads(content: bytes) -> Any:
    """``content`` as JSON, without what Python's json reads and JSON has not."""
    return json.loads(content, parse_constant=_no_constant, parse_float=_finite)


def _no_constant(name: str) -> NoReturn:
    # NaN, Infinity, -Infinity: Python's json reads them, and --json would print them.
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    # 1e400 is read as inf, which --json printed as Infinity: as the literal, it is refused.
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"{text[:40]} is too large a number")
    return number


def object_list(value: Any, server: str, what: str) -> list[dict[str, Any]]:
    """``value``, a list of JSON objects (none: an empty list), or :class:`RemoteError`
    naming ``server`` without the password or token its URL may hold."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise RemoteError(f"{redact_url(server)} answered {what} that are not a list of objects")
    return value


def problem_line(status: int, reason: str, content: bytes, readable: bool) -> str:
    """The line an error answer is said in: from its problem+json fields when ``readable``
    (its values within the bound) and it has them, else its status and reason."""
    try:
        problem = _loads(content) if readable else None
    except (ValueError, RecursionError):
        problem = None
    if isinstance(problem, dict) and ("title" in problem or "detail" in problem):
        line = _from_problem(status, problem)
    else:
        line = f"{status} {reason}"
    line = printable(line)
    return line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 3] + "..."


def _from_problem(status: int, problem: dict[str, Any]) -> str:
    line = f"{shown(problem.get('status'), str(status))} {shown(problem.get('title'), '')}"
    line = line.strip()
    if problem.get("detail"):
        line += f": {shown(problem['detail'])}"
    errors = problem.get("errors")
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict):
            location = error.get("location")
            parts = location if isinstance(location, list) else []
            where = ".".join(shown(p, "") for p in parts)
            said = f"{where}: {shown(error.get('message'), 'None')}"
            if said not in line:  # a detail often is its errors: each is said once
                line += f"; {said}"
        if len(line) > _MAX_LINE:
            break
    return line
