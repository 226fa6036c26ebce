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
import sys
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


class Unanswered(RemoteError):
    """A request sent whose answer did not come (not within the deadline, or the connection
    broke): as with :class:`UnreadableAnswer`, what was asked may have been done."""


class Unsent(RemoteError):
    """A request that never went out (a proxy that did not open the tunnel, a connection that
    timed out): nothing reached crontask, so nothing was done."""


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
    refused = f"{server} answered a number crontask refuses"
    try:
        body = _loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError):  # Unicode...: no UTF-8 (nor -16, -32)
        raise UnreadableAnswer(f"{server} answered with something that is not JSON") from None
    except _Refused as err:  # _no_constant, _finite: JSON but for that number, said
        raise UnreadableAnswer(f"{refused}: {err}") from None
    except ValueError:  # int()'s refusal, which tells the reader to call a Python function
        digits = sys.get_int_max_str_digits()
        raise UnreadableAnswer(f"{refused}: an integer of more than {digits:,} digits") from None
    except RecursionError:
        raise UnreadableAnswer(f"{server} answered with JSON nested too deep") from None
    if not isinstance(body, dict):
        raise UnreadableAnswer(f"{server} answered with unexpected JSON")
    return body


def _loads(content: bytes) -> Any:
    """``content`` as JSON, without what Python's json reads and JSON has not."""
    return json.loads(content, parse_constant=_no_constant, parse_float=_finite)


class _Refused(ValueError):
    """A number that is JSON to Python's json, refused: why, in words for the user."""


def _no_constant(name: str) -> NoReturn:
    # NaN, Infinity, -Infinity: Python's json reads them, and --json would print them.
    raise _Refused(f"{name} is not JSON")


def _finite(text: str) -> float:
    # 1e400 is read as inf, which --json printed as Infinity: as the literal, it is refused.
    number = float(text)
    if math.isinf(number):
        raise _Refused(f"{text[:40]} is too large a number")
    return number


def object_list(value: Any, server: str, what: str) -> list[dict[str, Any]]:
    """``value``, a list of JSON objects (none: an empty list), or :class:`RemoteError`
    naming ``server`` without the password or token its URL may hold."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise RemoteError(f"{redact_url(server)} answered {what} that are not a list of objects")
    return value


# The fields of a run, a task and a run's attempt as the API answers them, dotted for a field of
# an object within, each with the JSON types it may have (a list of strings: "strings"). Listed
# items are checked against them (:func:`shaped`): a field of another type is refused, as the
# README says, where `key: 5` or `state: [1]` was printed, exit status 0. An absent field is
# not refused (a server of another release may not send it): a table shows it as "-".
# `crontask plan --server` checks what it reads of a task itself. They are what api/models.py
# answers, written out (importing the models costs a command 455 ms):
# tests/cli/test_answer_fields_match_models.py derives them from the models' JSON schema.
RUN_FIELDS: Final = {
    "id": "string",
    "task": "string",
    "attempt": "integer",
    "trigger": "string",
    "status": "string",
    "reason": "string|null",
    "message": "string|null",
    "scheduledTime": "string",
    "startTime": "string|null",
    "completionTime": "string|null",
    "durationMs": "integer|null",
    "exitCode": "integer|null",
}
# Not its job: a job of another shape is shown as it can be (``history._job_lines``).
ATTEMPT_FIELDS: Final = {**RUN_FIELDS, "output": "string"}
TASK_FIELDS: Final = {
    "key": "string",
    "state": "string",
    "error": "string|null",
    "owner": "string|null",
    "suspended": "boolean",
    "resourceVersion": "string|null",
    "running": "strings",
    "nextRuns": "strings",
    "source": "object",
    "source.kind": "string",
    "source.location": "string",
    "source.revision": "string|null",
    "resource": "object",
    "resource.spec": "object",
    "resource.spec.schedule": "string",
    "resource.spec.timeZone": "string",  # the document in force: TaskSpec's default "UTC"
    "lastRun": "object|null",
    **{f"lastRun.{name}": types for name, types in RUN_FIELDS.items()},
}
_TYPE_WORDS: Final = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number with a fraction or exponent",
    "boolean": "true or false",
    "object": "an object",
    "null": "null",
    "strings": "a list of strings",
    "array": "a list not only of strings",
}
_ABSENT: Final = object()


def shaped(
    items: list[dict[str, Any]], fields: dict[str, str], server: str, what: str
) -> list[dict[str, Any]]:
    """``items`` (of a list: ``what``), each of whose ``fields`` is of its types or absent;
    else :class:`RemoteError` naming the first item and field that are not."""
    for number, item in enumerate(items, 1):
        wrong = next(filter(None, (_wrong(item, path, t) for path, t in fields.items())), None)
        if wrong is not None:
            said = f"{redact_url(server)} answered {what} of an unexpected shape"
            raise RemoteError(f"{said}: item {number}'s {wrong}")
    return items


def _wrong(item: dict[str, Any], path: str, types: str) -> str | None:
    """What is wrong with ``item``'s field at ``path`` (None: nothing, or it is absent)."""
    value: Any = item
    for name in path.split("."):  # an object on the way that is not there: its own entry says
        value = value.get(name, _ABSENT) if isinstance(value, dict) else _ABSENT
    if value is _ABSENT:
        return None
    found = _json_type(value)
    expected = types.split("|")
    if found in expected or (found == "strings" and "array" in expected):
        return None
    said = " or ".join(_TYPE_WORDS[t] for t in expected)
    return f"{path} is {_TYPE_WORDS[found]}, not {said}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: True is an int to Python
        return "boolean"
    if isinstance(value, list):
        return "strings" if all(isinstance(v, str) for v in value) else "array"
    kinds = {int: "integer", float: "number", str: "string", dict: "object"}
    return next(name for kind, name in kinds.items() if isinstance(value, kind))


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
