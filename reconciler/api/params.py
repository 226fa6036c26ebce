"""Every input the API takes from a path or a query string, bounded at the edge.

A name reaches a file name, a time reaches a datetime and an SQL column, a count reaches an
integer column: each is checked here, before a route runs, and a bad one is a 422 problem
naming the parameter. Names and namespaces are DNS-1123 labels (as in a CronTask's metadata),
so no path segment can be ``..``, ``.``, a dot-file, empty, over-long or carry a NUL; run ids
have the one shape :func:`reconciler.core.runs.run_id` gives them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Annotated, Final

from fastapi import Path, Query
from pydantic import PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from reconciler.core.runs import DNS1123_LABEL

LABEL_MAX: Final = 63
_LABEL: Final = DNS1123_LABEL.strip("^$")
KEY_PATTERN: Final = f"^{_LABEL}/{_LABEL}$"
KEY_MAX: Final = 2 * LABEL_MAX + 1
RUN_ID_PATTERN: Final = rf"^{_LABEL}\.{_LABEL}\.[0-9]{{8}}T[0-9]{{6}}(\.[0-9]{{6}})?Z$"
RUN_ID_MAX: Final = 2 * LABEL_MAX + 2 + len("20261127T010000.000000Z")
SOURCE_KIND_PATTERN: Final = r"^[a-z][a-z0-9-]{0,31}$"

# One rule for every time in a query: RFC 3339 date-time with an offset (``Z`` or ``±hh:mm``),
# fractions to the microsecond, between these instants (so that nothing overflows on the way
# to UTC, to SQLite's text or to PostgreSQL's timestamptz).
RFC3339_PATTERN: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(9999, 1, 1, tzinfo=UTC)
TIME_HELP: Final = (
    "RFC 3339 date-time with an offset, e.g. 2026-11-27T01:00:00Z, "
    "between 1970-01-01 and 9999-01-01"
)
NOT_ISSUED: Final = "not a continue token this API issued"

TASKS_PAGE_DEFAULT: Final = 500
TASKS_PAGE_MAX: Final = 5000
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


_RFC3339 = re.compile(RFC3339_PATTERN)


def parse_instant(value: object) -> datetime:
    """An RFC 3339 time as an aware UTC datetime; a 422 for anything else: no offset, a
    number, a date that does not exist, or an instant outside the bounds."""
    if not isinstance(value, str) or len(value) > 40 or _RFC3339.fullmatch(value) is None:
        raise PydanticCustomError("date_time", "must be " + TIME_HELP)
    try:
        parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        instant = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise PydanticCustomError("date_time", "not a valid date-time") from None
    if not EARLIEST <= instant < LATEST:
        raise PydanticCustomError(
            "date_time", "must be between 1970-01-01T00:00:00Z and 9999-01-01T00:00:00Z"
        )
    return instant


_TIME_SCHEMA = WithJsonSchema(
    {"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN, "maxLength": 40}
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
    str | None,
    Query(
        description="only tasks from this kind of source: file, git, kubernetes, api",
        pattern=SOURCE_KIND_PATTERN,
        max_length=32,
    ),
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
