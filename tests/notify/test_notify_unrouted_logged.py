"""A receiver that no route sends to is said when crontask starts, not only by ``crontask
validate``: a crontask started without validating the file (an edit made on the host, a
route's receiver renamed to another receiver's name) sent that receiver nothing, and nothing
said so, while a task file's warnings are logged at start."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from reconciler.sinks.notify_config import parse
from tests.notify.test_notifier import running

TEXT = (
    "receivers:\n"
    "  - {name: hook, type: generic, url: 'http://127.0.0.1:9/'}\n"
    "  - {name: spare, type: generic, url: 'http://127.0.0.1:9/'}\n"
    "routes:\n"
    "  - {receiver: hook, events: [failed]}\n"
)


def test_a_receiver_no_route_sends_to_is_logged_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="crontask.notify")
    notifier = Notifier(parse(TEXT, "n.yaml", tmp_path), metrics=Metrics())
    running(notifier, lambda: asyncio.sleep(0))
    said = [
        (r.getMessage(), r.__dict__["fields"])
        for r in caplog.records
        if r.name == "crontask.notify" and r.levelno == logging.WARNING
    ]
    assert said == [
        (
            "receivers[1]: no route sends to 'spare': it is sent no notification",
            {"location": "n.yaml:3:12"},
        )
    ]


def test_a_file_without_warnings_logs_none(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="crontask.notify")
    text = TEXT.replace(
        "  - {receiver: hook, events: [failed]}\n",
        "  - {receiver: hook, events: [failed]}\n  - {receiver: spare, events: [failed]}\n",
    )
    running(Notifier(parse(text, "n.yaml", tmp_path), metrics=Metrics()), lambda: asyncio.sleep(0))
    assert [r for r in caplog.records if r.name == "crontask.notify"] == []
