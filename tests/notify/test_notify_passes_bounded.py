"""Passes wait for the notifier's component to look at their definition errors, at most
``PASSES_MAX`` of them: past that the oldest waiting is skipped, said in a warning, and the
errors of the passes kept are told as if the skipped had not happened."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from reconciler.core.desired import DefinitionError, DesiredState, Location
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from reconciler.sinks.notify_config import parse
from reconciler.sinks.notify_errors import PASSES_MAX

CONFIG = """\
receivers:
  - {name: all, type: generic, url: "http://127.0.0.1:9/all"}
routes:
  - {receiver: all, events: [definitionError]}
"""
EXTRA = 3


def test_passes_past_the_bound_are_skipped_oldest_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(parse(CONFIG, "n.yaml", tmp_path), metrics=Metrics())
    errors = [
        DefinitionError(Location("file", f"tasks/{n}.yaml", 1, 1), "not YAML")
        for n in range(PASSES_MAX + EXTRA)
    ]
    for error in errors:  # each pass: one file broken, the one before it mended
        notifier.after_pass(DesiredState({}, errors=(error,)))
    assert not notifier.queues["all"]  # handed over, not looked at
    with caplog.at_level(logging.WARNING, logger="crontask.notify"):
        asyncio.run(notifier._drain())  # what the component does when woken
    told = [message.body["errors"] for message in notifier.queues["all"]]
    assert told == [[str(error)] for error in errors[EXTRA:]]
    [warning] = [r for r in caplog.records if "passes came faster" in r.getMessage()]
    assert warning.__dict__["fields"] == {"skipped": EXTRA}
