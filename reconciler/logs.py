"""Structured log lines: one event per line, ``key=value`` (logfmt) or JSON.

Callers pass fields with ``extra={"fields": {...}}``; the message is a short constant phrase
("task added") so lines can be grepped and counted. Nothing that may hold a secret (tokens,
environment values, HTTP headers) is ever passed as a field.

A field may carry what a stranger sent (a request path, a name in a bad definition), so each
is bounded: past :data:`MAX_FIELD_CHARS` (:data:`MAX_ERROR_CHARS` for a traceback) its middle
is cut and replaced by a marker saying how much, so both ends stay readable. Control
characters (NUL, CR, LF, ESC, DEL, the C1 set, Unicode line separators) never reach the
output raw: a logfmt value holding one is quoted and escaped, and JSON escapes them all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Final, Literal, TextIO

Format = Literal["logfmt", "json"]

MAX_FIELD_CHARS: Final = 2048
MAX_ERROR_CHARS: Final = 16384


def bounded(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    """``text`` if it has at most ``limit`` characters; else its head and tail around a marker
    (``...[12345 chars cut]...``), at most ``limit`` characters in all."""
    if len(text) <= limit:
        return text
    marker = f"...[{len(text)} chars, cut]..."
    keep = max(0, limit - len(marker))
    head = keep - keep // 2
    return text[:head] + marker + (text[-(keep // 2) :] if keep // 2 else "")


class _Formatter(logging.Formatter):
    def __init__(self, fmt: Format) -> None:
        super().__init__()
        self.fmt = fmt
        # The lines of a burst share their millisecond: its text is kept (a third of a line's
        # cost otherwise).
        self._ms = -1
        self._time = ""

    def _timestamp(self, created: float) -> str:
        ms = int(created * 1000)
        if ms != self._ms:
            self._ms = ms
            self._time = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
        return self._time

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "time": self._timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": bounded(record.getMessage()),
        }
        for name, value in (getattr(record, "fields", None) or {}).items():
            if type(value) is str:
                if len(value) > MAX_FIELD_CHARS:
                    value = bounded(value)
            elif not isinstance(value, _SHORT):
                text = str(value)
                if len(text) > MAX_FIELD_CHARS:
                    value = bounded(text)
            fields[name] = value
        if record.exc_info:
            fields["error"] = bounded(self.formatException(record.exc_info), MAX_ERROR_CHARS)
        if self.fmt == "json":
            return _ascii_del(json.dumps(fields, default=str))
        return " ".join([f"{k}={_logfmt(v)}" for k, v in fields.items() if v is not None])


# Characters that make a logfmt value need quotes (and so JSON escapes). A regex scan, because
# a line is formatted for every run start and end: at a thousand runs a second this is on the
# hot path. Beyond space, = and ": every C0 and C1 control, DEL, and U+2028/U+2029, which some
# viewers take for line breaks.
_NEEDS_QUOTES = re.compile(r'[ ="\\\x00-\x1f\x7f-\x9f\u2028\u2029]')
_SHORT = (int, float, type(None))  # bool is an int


def _logfmt(value: Any) -> str:
    text = value if type(value) is str else str(value)
    if text and _NEEDS_QUOTES.search(text) is None:
        return text
    return _ascii_del(json.dumps(text))


def _ascii_del(text: str) -> str:
    """``json.dumps`` escapes every other control character but not DEL (it is ASCII)."""
    return text.replace("\x7f", "\\u007f") if "\x7f" in text else text


class TurnHandler(logging.StreamHandler[TextIO]):
    """Writes the lines logged on an event loop once per turn of that loop, together.

    A thousand runs due in the same second log two thousand lines; formatted and written one
    by one on the loop, they were what paced the starts. A line logged on the loop is kept
    until the work queued behind the current turn has run, then the kept lines are formatted
    and written with one write. Lines from other threads, errors, and ``flush()`` (logging's
    shutdown at exit) write what is kept first, so the output keeps the order in which lines
    were logged, and ``time=`` is always when a line was logged.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._kept: list[logging.LogRecord] = []
        self._flush_on: asyncio.AbstractEventLoop | None = None  # where a write is queued

    def emit(self, record: logging.LogRecord) -> None:
        # Called by handle() with self.lock held.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or record.levelno >= logging.ERROR:
            self._write([*self._take(), record])
            return
        if self._flush_on is not loop:  # also when a loop closed with a write still queued
            # A timer due now runs after everything already queued for the next turn (the
            # starts this turn set in motion), not before it as call_soon would.
            loop.call_later(0, self.flush)
            self._flush_on = loop
        self._kept.append(record)

    def flush(self) -> None:
        self.acquire()
        try:
            self._write(self._take())
        finally:
            self.release()

    def _take(self) -> list[logging.LogRecord]:
        kept, self._kept, self._flush_on = self._kept, [], None
        return kept

    def _write(self, records: list[logging.LogRecord]) -> None:
        lines = []
        for record in records:
            try:
                lines.append(self.format(record) + self.terminator)
            except Exception:
                self.handleError(record)
        try:
            if lines:
                self.stream.write("".join(lines))
            self.stream.flush()
        except Exception:
            self.handleError(records[-1] if records else logging.makeLogRecord({}))


def configure(level: str = "info", fmt: Format = "logfmt") -> None:
    # What the formatter never shows is not collected (the logging HOWTO's "Optimization"):
    # the caller's file and line, thread and process names. A line then costs half as much,
    # which counts at two lines per run.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = TurnHandler(sys.stderr)
    handler.setFormatter(_Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # APScheduler's own lines ("Added job ...", "Running job ...") repeat ours at info level.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # Alembic narrates every migration step at info level; crontask logs the outcome itself.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # urllib3 (under the Kubernetes client) logs each low-level retry; crontask logs one line
    # per failed watch attempt with its backoff, which is what an operator needs.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    # httpx logs each request's URL at info level (httpcore each step at debug), and an http
    # task's or a webhook's URL often holds its secret (user:password@, ?token=); crontask
    # logs a run's outcome with the URL redacted.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
