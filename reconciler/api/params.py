"""Every input the API takes from a path, a query string or a body, bounded at the edge.

A name reaches a file name, a time reaches a datetime and an SQL column, a count reaches an
integer column: each is checked here, before a route runs, and a bad one is a 422 problem
naming the parameter. Names and namespaces are DNS-1123 labels (as in a CronTask's metadata),
so no path segment can be ``..``, ``.``, a dot-file, empty, over-long or carry a NUL; run ids
have the one shape :func:`reconciler.core.runs.run_id` gives them.

A CronTask sent as JSON (:data:`DocumentBody`) is read as strictly as the YAML of a task file
(:mod:`~reconciler.api.jsonbody`): what it refuses is a 422 naming the place, never a bare 400.

An ``If-None-Match`` header is read as the versions it names (:func:`if_none_match_tags`);
a value that is no entity tag is a 422 naming the header. An ``If-Match`` or ``If-None-Match``
sent on several lines is read as the one list they make (RFC 9110 §5.3), not by its first line.
"""

from __future__ import annotations

import base64
import binascii
import email.message
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, TypeVar

from fastapi import Depends, Header, Path, Query, Request
from pydantic import PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError
from starlette.concurrency import run_in_threadpool

from reconciler.api.jsonbody import BodyProblem, parse_object
from reconciler.api.problems import FieldProblem, ProblemError, bounded_location
from reconciler.core.desired import SourceKind
from reconciler.core.runs import DNS1123_LABEL, RFC3339_QUERY_PATTERN
from reconciler.sources.messages import dotted

LABEL_MAX: Final = 63
_LABEL: Final = DNS1123_LABEL.strip("^$")
KEY_PATTERN: Final = f"^{_LABEL}/{_LABEL}$"
KEY_MAX: Final = 2 * LABEL_MAX + 1
RUN_ID_PATTERN: Final = rf"^{_LABEL}\.{_LABEL}\.[0-9]{{8}}T[0-9]{{6}}(\.[0-9]{{6}})?Z$"
RUN_ID_MAX: Final = 2 * LABEL_MAX + 2 + len("20261127T010000.000000Z")

# One rule for every time in a query: RFC 3339 date-time with an offset (``Z`` or ``±hh:mm``),
# fractions to the nanosecond (``RFC3339_QUERY_PATTERN``), between these instants (so that nothing
# overflows on the way to UTC, to SQLite's text or to PostgreSQL's timestamptz).
EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(9999, 1, 1, tzinfo=UTC)
TIME_HELP: Final = (
    "RFC 3339 date-time with an offset, e.g. 2026-11-27T01:00:00Z, "
    "between 1970-01-01 and 9999-01-01"
)
NOT_ISSUED: Final = "not a continue token this API issued"

TASKS_PAGE_DEFAULT: Final = 500
TASKS_PAGE_MAX: Final = 5000
# The resources of one task page, as JSON: a page of many large tasks ends early (with a
# continue token), within what `crontask tasks` reads in one answer (64 MiB).
TASKS_PAGE_BYTES: Final = 16 * 1024 * 1024
_T = TypeVar("_T")


def within_bytes(items: Sequence[_T], size: Callable[[_T], int], budget: int) -> int:
    """How many of ``items`` one page holds: all, or as many as fit in ``budget`` bytes, each
    ``size`` of them (at least one); a page cut short ends with a continue token like any
    other."""
    used = 0
    for count, item in enumerate(items):
        used += size(item)
        if used > budget and count:
            return count
    return len(items)


CONTINUE_MAX: Final = 1024  # a token this API issues is far shorter

Namespace = Annotated[
    str,
    Path(
        description="the task's namespace (a DNS-1123 label)",
        examples=["default"],
        pattern=DNS1123_LABEL,
        max_length=LABEL_MAX,
    ),
]
Name = Annotated[
    str,
    Path(
        description="the task's name (a DNS-1123 label)",
        examples=["hello"],
        pattern=DNS1123_LABEL,
        max_length=LABEL_MAX,
    ),
]
RunId = Annotated[
    str,
    Path(
        description="the run's id: NAMESPACE.NAME.YYYYMMDDTHHMMSS[.ffffff]Z",
        examples=["default.hello.20261126T213040Z"],
        pattern=RUN_ID_PATTERN,
        max_length=RUN_ID_MAX,
    ),
]


_RFC3339 = re.compile(RFC3339_QUERY_PATTERN)


def parse_instant(value: object) -> datetime:
    """An RFC 3339 time as an aware UTC datetime; a 422 for anything else: no offset, a
    number, a date that does not exist, or an instant outside the bounds.

    A fraction past the microsecond is rounded up to it: runs are scheduled at whole
    microseconds, and both bounds of a query (``since`` at or after, ``until`` before) then
    select exactly the runs the nanoseconds would have."""
    if not isinstance(value, str) or len(value) > 40 or _RFC3339.fullmatch(value) is None:
        raise PydanticCustomError("date_time", "must be " + TIME_HELP + _plus_hint(value))
    fraction = value.partition(".")[2]  # its digits, then the offset
    digits = fraction[: len(fraction) - len(fraction.lstrip("0123456789"))]
    out_of_bounds = PydanticCustomError(
        "date_time", "must be between 1970-01-01T00:00:00Z and 9999-01-01T00:00:00Z"
    )
    try:
        # fromisoformat drops the digits past the sixth: they are rounded up below.
        parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise PydanticCustomError("date_time", "not a valid date-time") from None
    try:  # a valid time whose UTC instant is past year 9999 or before year 1
        instant = parsed.astimezone(UTC)
    except OverflowError:
        raise out_of_bounds from None
    if not EARLIEST <= instant < LATEST:
        raise out_of_bounds
    if digits.rstrip("0")[6:]:  # at most LATEST: no overflow
        instant += timedelta(microseconds=1)
    return instant


def _plus_hint(value: object) -> str:
    """Why a time whose offset's ``+`` became a space fails: a ``+`` in a query string is
    a space (form encoding), which a client that does not encode it never sees."""
    if not isinstance(value, str) or len(value) > 40:
        return ""
    head, space, offset = value.rpartition(" ")
    if not space or _RFC3339.fullmatch(f"{head}+{offset}") is None:
        return ""
    return f"; a '+' in a URL query is read as a space: write %2B{offset}"


_TIME_SCHEMA = WithJsonSchema(
    {"type": "string", "format": "date-time", "pattern": RFC3339_QUERY_PATTERN, "maxLength": 40}
)
Since = Annotated[
    datetime | None,
    Query(description=f"only runs scheduled at or after this time; {TIME_HELP}"),
    PlainValidator(parse_instant),
    _TIME_SCHEMA,
]
Until = Annotated[
    datetime | None,
    Query(description=f"only runs scheduled before this time; {TIME_HELP}"),
    PlainValidator(parse_instant),
    _TIME_SCHEMA,
]

TaskKeyQuery = Annotated[
    str | None,
    Query(description="namespace/name", pattern=KEY_PATTERN, max_length=KEY_MAX),
]
NamespaceQuery = Annotated[
    str | None,
    Query(description="only this namespace", pattern=DNS1123_LABEL, max_length=LABEL_MAX),
]
SourceKindQuery = Annotated[
    SourceKind | None,
    Query(description="only tasks from this kind of source"),
]
ContinueQuery = Annotated[
    str | None,
    Query(
        alias="continue",
        description="`metadata.continue` of the previous page of the same query",
        max_length=CONTINUE_MAX,
        pattern=r"^[A-Za-z0-9_-]+$",
    ),
]


class InvalidToken(ValueError):
    """A continue token (or cursor) this API did not issue."""


_KEY = re.compile(KEY_PATTERN)


def encode_task_token(last_key: str) -> str:
    """The continue token of a task list: the last key of the page (the list is sorted by key,
    so the next page is every key after it, whatever was added or removed meanwhile)."""
    raw = json.dumps({"v": 1, "after": last_key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_task_token(token: str) -> str:
    """The key a task list token names; :class:`InvalidToken` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidToken(token) from None
    after = body.get("after") if isinstance(body, dict) and body.get("v") == 1 else None
    if not isinstance(after, str) or len(body) != 2 or _KEY.fullmatch(after) is None:
        raise InvalidToken(token)
    return after


IF_MATCH_MAX: Final = 1024  # of all the header's lines, joined
IF_MATCH: Final = 'the ETag (or resourceVersion, quoted: `"v"`) this change is based on, or '


def _header_list(request: Request, name: str) -> str | None:
    """The lines of the header ``name`` as the one comma-separated list they are (RFC 9110
    §5.3), at most :data:`IF_MATCH_MAX` characters in all (a 422, as for one line over it).
    FastAPI reads the first line only: ``If-None-Match: "x"`` then a line naming the current
    version deleted the task the second line said to keep. The ``Header`` parameters of the
    dependencies below are for the schema (and bound the first line as ever)."""
    lines = request.headers.getlist(name)
    if not lines:
        return None
    joined = ", ".join(lines)
    if len(joined) > IF_MATCH_MAX:
        message = f"String should have at most {IF_MATCH_MAX} characters"
        raise ProblemError(
            422,
            f"header.{name}: {message}",
            title="Invalid request",
            errors=[FieldProblem(location=["header", name], message=message)],
        )
    return joined


def _if_none_match_list(request: Request) -> str | None:
    """The ``If-None-Match`` lines as one list; ``*`` when one of its items is ``*``: it is
    the strictest condition (no version at all), and ``*, "v"`` is no list the header allows.
    Items, not lines: a proxy may join the lines into one (RFC 9110 §5.3)."""
    joined = _header_list(request, "If-None-Match")
    if joined is not None and any(item.strip() == "*" for item in joined.split(",")):
        return "*"
    return joined


def _if_match(
    request: Request,
    header: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description=f"{IF_MATCH}`*` for any existing version; 412 if it is at another version",
            max_length=IF_MATCH_MAX,
        ),
    ] = None,
) -> str | None:
    return _header_list(request, "If-Match")


def _if_none_match_header(
    request: Request,
    header: Annotated[
        str | None,
        Header(
            alias="If-None-Match",
            description="`*`: create only (another value is not looked at)",
            max_length=IF_MATCH_MAX,
        ),
    ] = None,
) -> str | None:
    return _if_none_match_list(request)


IfMatchHeader = Annotated[str | None, Depends(_if_match)]
IfNoneMatchHeader = Annotated[str | None, Depends(_if_none_match_header)]  # a PUT's


def if_none_match_tags(header: str | None) -> frozenset[str] | None:
    """The versions an ``If-None-Match`` header names (RFC 9110 §13.1.2): ``{"*"}`` for
    ``*``, else its entity tags, weak ones as strong (the weak comparison the header asks
    for); a value that is neither is a 422, as for ``If-Match``. A quoted ``"*"`` is an opaque
    tag, which no version is: it is left out, never read as the wildcard."""
    if header is None:
        return None
    if header.strip() == "*":
        return frozenset({"*"})
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    if not all(len(t) >= 2 and t[0] == t[-1] == '"' for t in tags):
        message = 'expected "*" or quoted versions: "v1", W/"v2"'
        raise ProblemError(
            422,
            "header.If-None-Match: not an entity tag",
            title="Invalid request",
            errors=[FieldProblem(location=["header", "If-None-Match"], message=message)],
        )
    return frozenset(t[1:-1] for t in tags if t != '"*"')


def _if_none_match(
    request: Request,
    header: Annotated[
        str | None,
        Header(
            alias="If-None-Match",
            description="`*`, or ETags (weak ones compare as strong): 412 if the task exists, "
            "or is at one of the versions given",
            max_length=IF_MATCH_MAX,
        ),
    ] = None,
) -> frozenset[str] | None:
    return if_none_match_tags(_if_none_match_list(request))


IfNoneMatchTags = Annotated[frozenset[str] | None, Depends(_if_none_match)]  # a DELETE's


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


async def read_document(request: Request) -> dict[str, Any]:
    """The body of a write: a JSON object, parsed off the event loop; a 422 otherwise."""
    body = await request.body()
    try:
        if not body:
            raise BodyProblem("Field required")
        if not _is_json(request.headers.get("content-type")):
            raise BodyProblem("Input should be a valid dictionary (send application/json)")
        # Off the loop: a 1 MiB body is a few milliseconds the scheduler must not wait.
        return await run_in_threadpool(parse_object, body)
    except BodyProblem as problem:
        where = ["body", *problem.path]
        raise ProblemError(
            422,
            f"{dotted(where)}: {problem.message}",
            title="Invalid request",
            errors=[FieldProblem(location=bounded_location(where), message=problem.message)],
        ) from None


DocumentBody = Annotated[dict[str, Any], Depends(read_document)]
