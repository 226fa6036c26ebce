"""A crontask without Kubernetes: a ``job`` task is an error of its key alone, and a task that
ran a command before it became a ``job`` task keeps running that, as a broken file's tasks do.
Through the real reconciler and directory source, on the in-memory scheduler."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.job_options import NO_CONNECTION, WithoutJobs
from reconciler.controller.reconcile import Reconciler
from reconciler.core.desired import Definition
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.sources.files import DirectorySource
from reconciler.store import MemoryRunStore
from tests.helpers import local_actions, task_doc

POD = {"containers": [{"name": "main", "image": "busybox"}]}


def write(path: Path, name: str, **spec: Any) -> None:
    document = task_doc(name, **spec)
    if "job" in spec:
        del document["spec"]["command"]
    path.write_text(yaml.safe_dump(document))
    stat = path.stat()  # a new (mtime, size, inode) even within one clock tick
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def test_a_command_task_turned_into_a_job_task_keeps_running_its_command(
    tmp_path: Path,
) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"

    async def main() -> None:
        reconciler: Reconciler

        def in_force(key: str) -> Definition | None:
            return reconciler.desired.tasks.get(key)

        scheduler = MemoryScheduler(lambda key, at: None, datetime.now(UTC))
        dispatcher = Dispatcher(MemoryRunStore(), owner="h:1:x", actions=local_actions())
        source = WithoutJobs(DirectorySource([tmp_path]), in_force)
        reconciler = Reconciler([source], scheduler, dispatcher, allow_empty=True)

        def running(key: str) -> list[str] | None:
            definition = scheduler.owned().get(key)
            command = definition.task.spec.command if definition else None
            return None if command is None else list(command.args)

        write(a, "a", command={"args": ["echo", "one"]})
        write(b, "b", job={"spec": {"template": {"spec": POD}}})
        assert (await reconciler.run_pass(None)).ok
        assert running("default/a") == ["echo", "one"]
        assert "default/b" not in scheduler.owned()  # a job task from the start: nothing kept
        # A full pass, then a pass of the file's own event.
        for last, hints in (("one", None), ("two", {"file": [str(a.absolute())]})):
            write(a, "a", job={"spec": {"template": {"spec": POD}}})
            assert (await reconciler.run_pass(hints)).ok
            assert running("default/a") == ["echo", last]
            assert reconciler.desired.tasks["default/a"].error == f"{a}:1:1: {NO_CONNECTION}"
            assert f"{a}:1:1: {NO_CONNECTION}" in reconciler.desired.problems
            assert (await reconciler.run_pass(None)).ok  # a resync keeps it too
            assert running("default/a") == ["echo", last]
            write(a, "a", command={"args": ["echo", "two"]})
            assert (await reconciler.run_pass(hints)).ok
            assert running("default/a") == ["echo", "two"]
            assert reconciler.desired.tasks["default/a"].error is None
        a.unlink()
        assert (await reconciler.run_pass(None)).ok
        assert "default/a" not in scheduler.owned()

    asyncio.run(main())
