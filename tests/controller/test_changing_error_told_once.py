"""A file that stays broken the same way is told once, however its message's numbers move.

A growing file over --max-file-size ("file is 1100004 bytes, over the limit ...") and a file
refused by --max-tasks ("declares N tasks, which would take this source to M tasks", whose M
an edit of another file changes) were logged, and notified, as a new definition error at each
change, each time after a false "definition error resolved": ``problem_lines.identity``
compared the whole message. A real folder source, the reconciler's log and the notifier."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import Reconciler
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from reconciler.sinks.notify_config import parse
from reconciler.sources.files import DirectorySource
from reconciler.store import MemoryRunStore
from tests.controller.test_reconcile_many_errors import NOTIFICATIONS
from tests.helpers import local_actions
from tests.sources.test_task_bound import docs

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.message for r in caplog.records if r.message.startswith("definition error")]


def _passes(
    tmp_path: Path, source: DirectorySource, edits: list[tuple[Path, str]]
) -> tuple[list[int], list[str]]:
    """Run a first pass and one pass per edit of ``edits`` (a file and its new text): the
    notifications queued after each pass, and the errors shown after the last."""
    scheduler = MemoryScheduler(lambda key, at: None, T0)
    idle = Dispatcher(MemoryRunStore(), owner="h:1:x", actions=local_actions())
    reconciler = Reconciler([source], scheduler, idle, clock=lambda: T0)
    notifier = Notifier(parse(NOTIFICATIONS, "n.yaml", tmp_path), metrics=Metrics())
    queued: list[int] = []

    async def one_pass(hints: dict[str, set[str]] | None) -> None:
        reconciler.apply(reconciler.refresh(hints), hints)
        notifier.after_pass(reconciler.desired)
        await notifier._drain()  # no senders: what is told stays queued
        queued.append(len(notifier.queues["all"]))

    async def main() -> None:
        await one_pass(None)
        for path, text in edits:
            path.write_text(text)
            await one_pass({"file": {str(path.absolute())}})
        await idle.shutdown(0)

    asyncio.run(main())
    return queued, sorted(str(e) for e in reconciler.desired.errors)


def test_a_file_growing_over_the_size_limit_is_told_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "tasks"
    folder.mkdir()
    grow = folder / "grow.yaml"
    grow.write_text("#" * 400)
    (folder / "keep.yaml").write_text(docs("keep"))
    caplog.set_level(logging.INFO, logger="crontask")
    edits = [(grow, "#" * (400 + n)) for n in range(1, 4)]
    queued, shown = _passes(tmp_path, DirectorySource([folder], max_file_size=300), edits)
    # Told once, when it first appeared; not again, nor "resolved", as it grew.
    assert (_said(caplog), queued) == (["definition error"], [1, 1, 1, 1])
    assert shown == [
        f"{grow}:1:1: file is 403 bytes, over the limit of 300 bytes (--max-file-size): not read"
    ]


def test_a_file_refused_for_room_is_told_once_as_another_file_changes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "tasks"
    folder.mkdir()
    a = folder / "a.yaml"
    a.write_text(docs("a1", "a2"))
    (folder / "b.yaml").write_text(docs("b1", "b2", "b3"))
    caplog.set_level(logging.INFO, logger="crontask")
    # a loses a task: b would take the source to 4, not 5, past 3 all the same.
    queued, shown = _passes(tmp_path, DirectorySource([folder], max_tasks=3), [(a, docs("a1"))])
    assert (_said(caplog), queued) == (["definition error"], [1, 1])
    assert shown == [
        f"{folder}/b.yaml:1:1: declares 3 tasks, which would take this source to 4 tasks, "
        "past its bound of 3 (--max-tasks): not applied; none is added"
    ]
