"""Removals held because every source came back empty are applied by the pass that ends the
hold, even when that pass re-reads only what an event named, not left to the next resync."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import Hints, PassResult, Reconciler
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.sources.files import DirectorySource
from reconciler.store import MemoryRunStore
from tests.helpers import local_actions

T0 = datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC)
HELD = "every source is empty; keeping the running tasks (use --allow-empty to remove)"


def doc(name: str) -> str:
    return (
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"
        f"metadata: {{name: {name}}}\n"
        'spec:\n  schedule: "* * * * *"\n  command: {args: ["true"]}\n'
    )


class Folder:
    """A real folder read by a real DirectorySource; passes as the file watcher asks them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.scheduler = MemoryScheduler(lambda key, at: None, T0)
        idle = Dispatcher(MemoryRunStore(), owner="h:1:x", actions=local_actions())
        self.reconciler = Reconciler([DirectorySource([root])], self.scheduler, idle)

    def scheduled(self) -> list[str]:
        return sorted(self.scheduler.owned())

    def run(self, hints: Hints | None) -> PassResult:
        result = asyncio.run(self.reconciler.run_pass(hints))
        assert result.ok, result.error
        return result

    def changed(self, *names: str) -> PassResult:
        """The pass a file event naming ``names`` asks for (keys: those the files touched)."""
        return self.run({"file": {str((self.root / n).absolute()) for n in names}})


def test_a_task_added_after_every_file_was_deleted_ends_the_hold(tmp_path: Path) -> None:
    folder = Folder(tmp_path)
    for name in ("a", "b"):
        (tmp_path / f"{name}.yaml").write_text(doc(name))
    folder.run(None)
    for name in ("a", "b"):
        (tmp_path / f"{name}.yaml").unlink()
    held = folder.changed("a.yaml", "b.yaml")
    assert held.plan.held_removals == ("default/a", "default/b")
    assert folder.scheduled() == ["default/a", "default/b"]

    (tmp_path / "c.yaml").write_text(doc("c"))
    ended = folder.changed("c.yaml")
    assert ended.plan.summary() == "1 to add, 0 to change, 2 to remove, 0 unchanged"
    assert folder.scheduled() == ["default/c"]
    assert ended.keys == frozenset({"default/a", "default/b", "default/c"})
    # A resync then finds nothing left to do.
    assert folder.run(None).plan.summary() == "0 to add, 0 to change, 0 to remove, 1 unchanged"


def test_a_task_declared_again_keeps_its_job_and_the_others_held_go(tmp_path: Path) -> None:
    folder = Folder(tmp_path)
    for name in ("a", "b"):
        (tmp_path / f"{name}.yaml").write_text(doc(name))
    folder.run(None)
    (tmp_path / "a.yaml").unlink()
    (tmp_path / "b.yaml").unlink()
    folder.changed("a.yaml", "b.yaml")
    (tmp_path / "a.yaml").write_text(doc("a"))
    ended = folder.changed("a.yaml")
    assert ended.plan.summary() == "0 to add, 0 to change, 1 to remove, 1 unchanged"
    assert folder.scheduled() == ["default/a"]
    # Deleted again alone, it is held again: the hold is about an empty set, whatever came before.
    (tmp_path / "a.yaml").unlink()
    assert folder.changed("a.yaml").plan.held_removals == ("default/a",)
    assert folder.scheduled() == ["default/a"]


def test_passes_while_still_empty_keep_holding_and_warn_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="crontask.controller")
    folder = Folder(tmp_path)
    (tmp_path / "a.yaml").write_text(doc("a"))
    folder.run(None)
    (tmp_path / "a.yaml").unlink()
    folder.changed("a.yaml")
    (tmp_path / "notes.txt").write_text("not a task")
    still = folder.changed("notes.txt")  # an event that touches no task key
    assert still.plan.held_removals == ("default/a",)
    assert folder.scheduled() == ["default/a"]
    assert [r.getMessage() for r in caplog.records].count(HELD) == 1
    # A resync says it again (as it always did): the operator is reminded every resync.
    folder.run(None)
    assert [r.getMessage() for r in caplog.records].count(HELD) == 2
    (tmp_path / "b.yaml").write_text(doc("b"))
    assert folder.changed("b.yaml").plan.summary() == (
        "1 to add, 0 to change, 1 to remove, 0 unchanged"
    )
    assert folder.scheduled() == ["default/b"]
