"""Structured log lines: one event per line, ``key=value`` (logfmt) or JSON.

Callers pass fields with ``extra={"fields": {...}}``; the message is a short constant phrase
("task added") so lines can be grepped and counted. Nothing that may hold a secret (tokens,
environment values, HTTP headers) is ever passed as a field.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal

Format = Literal["logfmt", "json"]


class _Formatter(logging.Formatter):
    def __init__(self, fmt: Format) -> None:
        super().__init__()
        self.fmt = fmt

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields.update(getattr(record, "fields", {}) or {})
        if record.exc_info:
            fields["error"] = self.formatException(record.exc_info)
        if self.fmt == "json":
            return json.dumps(fields, default=str)
        return " ".join(f"{k}={_logfmt(v)}" for k, v in fields.items() if v is not None)


# Characters that make a logfmt value need quotes. A regex scan, because a line is formatted
# for every run start and end: at a thousand runs a second this is on the hot path.
_NEEDS_QUOTES = re.compile(r'[ ="\n\t\\]')


def _logfmt(value: Any) -> str:
    text = value if type(value) is str else str(value)
    if text and _NEEDS_QUOTES.search(text) is None:
        return text
    return json.dumps(text)


def configure(level: str = "info", fmt: Format = "logfmt") -> None:
    handler = logging.StreamHandler(sys.stderr)
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
