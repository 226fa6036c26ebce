"""A query of the run history and its pages: :class:`RunQuery`, :class:`RunPage` and the
keyset :class:`Cursor` that links one page to the next.

The vocabulary of ``RunStore.query`` (``base.py``), shared by every store: a query is checked
when it is built, so a store never sees a filter or a cursor it cannot answer, and a cursor is
encoded and decoded here only, so a token from one store's page means the same to any other.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from reconciler.core.runs import RunRecord, RunStatus, Trigger
from reconciler.store.records import storable_text, utc

__all__ = ["MAX_PAGE_SIZE", "Cursor", "RunPage", "RunQuery"]

MAX_PAGE_SIZE: Final = 1000
"""The largest ``RunQuery.limit``: a page is one round trip, not an export."""

# What a cursor may hold: values every store's columns can take (``attempt`` is a 32-bit
# integer in PostgreSQL, ``id`` a String(255); SQLite raises OverflowError beyond 64 bits).
_MAX_CURSOR_CHARS: Final = 1024
_MAX_ATTEMPT: Final = 2**31 - 1
_MAX_ID_CHARS: Final = 255
_EARLIEST: Final = datetime(1, 1, 2, tzinfo=UTC)
_LATEST: Final = datetime(9999, 12, 30, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class RunQuery:
    """A filtered, paginated view of the history. Filters combine with AND.

    ``since`` is inclusive and ``until`` exclusive, both on ``scheduled_at`` (a half-open window,
    so consecutive windows neither overlap nor leave gaps). ``cursor`` is the ``next_cursor`` of
    the previous page of the *same* query; it is opaque and keyset-based (it names the last row
    seen, not an offset), so rows inserted while paging do not shift later pages.
    """

    task: str | None = None
    status: RunStatus | None = None
    trigger: Trigger | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50
    cursor: str | None = None
    # False: the records come without their output (""). A list that does not show it reads a
    # fraction of the rows' bytes: outputs are up to 64 KiB each, a page up to 1 000 rows.
    output: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be in 1..{MAX_PAGE_SIZE}, got {self.limit}")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware")
            try:
                if value is not None and not _EARLIEST <= utc(value) <= _LATEST:
                    raise ValueError(f"{name} must be between years 1 and 9999 in UTC")
            except OverflowError:
                raise ValueError(f"{name} overflows in UTC: {value!r}") from None
        if self.cursor is not None:
            Cursor.decode(self.cursor)  # fail at construction, not deep inside a store


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page, newest first. ``next_cursor`` is ``None`` on the last page."""

    items: list[RunRecord]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Cursor:
    """The keyset position after which the next page starts: the sort key of the last item."""

    scheduled_at: datetime
    id: str
    attempt: int

    @classmethod
    def after(cls, record: RunRecord) -> Cursor:
        return cls(utc(record.scheduled_at), record.id, record.attempt)

    def encode(self) -> str:
        raw = json.dumps(
            [self.scheduled_at.isoformat(), self.id, self.attempt], separators=(",", ":")
        )
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """The cursor ``token`` encodes; ``ValueError`` for anything :meth:`encode` cannot have
        produced: malformed, over-long, or holding values no column can (an attempt beyond a
        32-bit integer, a time that overflows on its way to UTC, an id longer than the key or
        with a character no back end stores: PostgreSQL refused a NUL with a 500)."""
        try:
            if len(token) > _MAX_CURSOR_CHARS:
                raise ValueError("too long")
            padded = token + "=" * (-len(token) % 4)
            at, run_id, attempt = json.loads(base64.urlsafe_b64decode(padded.encode()))
            if not isinstance(at, str) or not isinstance(run_id, str) or type(attempt) is not int:
                raise ValueError(token)
            when = utc(datetime.fromisoformat(at))
            if not (1 <= attempt <= _MAX_ATTEMPT and 0 < len(run_id) <= _MAX_ID_CHARS):
                raise ValueError(token)
            if storable_text(run_id) != run_id:  # a NUL or a lone surrogate: no stored id
                raise ValueError(token)
            if not _EARLIEST <= when <= _LATEST:
                raise ValueError(token)
        except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
            raise ValueError(f"malformed cursor {token[:64]!r}") from exc
        return cls(when, run_id, attempt)

    def sort_key(self) -> tuple[datetime, str, int]:
        return (self.scheduled_at, self.id, self.attempt)
