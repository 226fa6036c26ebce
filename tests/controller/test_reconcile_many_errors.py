"""An edit among many definition errors costs what the edit changed.

A commit of 5 000 broken files (100 000 errors) made every later pass sort and format every
error again, in the pass and in each of its consumers (the log, notifications, metrics): an
edit of a good file took 0.45 s to take effect instead of 17 ms. Formatting is what each
consumer did per error, so it is counted here: none for an edit elsewhere."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import Reconciler
from reconciler.core.desired import DefinitionError
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from reconciler.sinks.notify_config import parse
from reconciler.sources.files import DirectorySource
from reconciler.store import MemoryRunStore
from tests.helpers import local_actions, task_doc

T0 = datetime(2026, 3, 1, tzinfo=UTC)
NOTIFICATIONS = """\
receivers:
  - {name: all, type: generic, url: "http://127.0.0.1:9/all"}
routes:
  - {receiver: all, events: [definitionError]}
"""


def _write(path: Path, *docs: dict[str, object]) -> None:
    path.write_text(yaml.safe_dump_all(docs))


def test_an_edit_elsewhere_formats_no_error_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "tasks"
    folder.mkdir()
    for f in range(40):
        broken = [task_doc(f"b{f}-{d}", schedule=f"bad {d}") for d in range(5)]
        _write(folder / f"broken{f}.yaml", *broken)
    good = folder / "good.yaml"
    _write(good, task_doc("good"))
    scheduler = MemoryScheduler(lambda key, at: None, T0)
    idle = Dispatcher(MemoryRunStore(), owner="h:1:x", actions=local_actions())
    reconciler = Reconciler([DirectorySource([folder])], scheduler, idle, clock=lambda: T0)
    metrics = Metrics()
    notifier = Notifier(parse(NOTIFICATIONS, "n.yaml", tmp_path), metrics=metrics)

    async def one_pass(hints: dict[str, set[str]] | None) -> None:
        reconciler.apply(reconciler.refresh(hints), hints)
        notifier.after_pass(reconciler.desired)
        await notifier._drain()  # its component finds the new errors (alone: no senders)
        metrics.reconciled(True, 0.0, reconciler.desired)

    # Passes run on a loop, as the runtime makes them (the dispatcher writes off it).
    async def main() -> None:
        await one_pass(None)
        assert len(reconciler.desired.errors) == 200
        assert len(notifier.queues["all"]) == 1
        formatted: list[DefinitionError] = []
        plain = DefinitionError.__str__

        def counted(self: DefinitionError) -> str:
            formatted.append(self)
            return plain(self)

        monkeypatch.setattr(DefinitionError, "__str__", counted)
        _write(good, task_doc("good", schedule="0 * * * *"))
        caplog.set_level(logging.INFO, logger="crontask")
        caplog.clear()
        await one_pass({"file": {str(good.absolute())}})
        assert scheduler.owned()["default/good"].task.spec.schedule == "0 * * * *"
        assert formatted == []
        assert not [r for r in caplog.records if r.message.startswith("definition error")]

        # The broken file fixed: its five errors are formatted once, each consumer, and told.
        _write(folder / "broken3.yaml", task_doc("b3-0"))
        await one_pass({"file": {str((folder / "broken3.yaml").absolute())}})
        assert len(reconciler.desired.errors) == 195
        assert [r.message for r in caplog.records].count("definition error resolved") == 5
        assert len(formatted) == 10  # the pass's log and the notifier's (which has nothing to send)
        assert len(notifier.queues["all"]) == 1
        await idle.shutdown(0)

    asyncio.run(main())
