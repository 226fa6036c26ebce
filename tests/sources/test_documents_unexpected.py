"""One document that breaks validation itself (not a ValidationError: an exception no input
should cause) is a definition error of that document; the other tasks of the folder are read
and scheduled as ever, and the broken task keeps its last good definition.

The real case: ``containers: [null]`` in a job task's JobSpec made the JobSpec check raise
AttributeError, out of every source and every reconcile pass: one object stopped all
scheduling. The fault injected below stands for the next such bug."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.core import actions, jobspec
from reconciler.core.desired import DefinitionError
from reconciler.sources.api import read_stored
from reconciler.sources.documents import parse_text
from reconciler.sources.files import DirectorySource
from tests.controller.test_reconcile import World
from tests.sources.test_files import doc, keys, write

NULL_CONTAINER = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: evil, namespace: team-b}
spec:
  schedule: "0 3 * * *"
  job:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [null]
"""
NULL_PROBLEM = (
    "11:24: spec.job.spec.template.spec.containers[0]: Invalid value: must be an object (got null)"
)


def job_doc(name: str, image: str) -> str:
    return (
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"
        f"metadata: {{name: {name}}}\n"
        'spec:\n  schedule: "@daily"\n  job:\n    spec:\n      template:\n        spec:\n'
        f"          containers: [{{name: main, image: {image}}}]\n"
    )


def test_a_null_container_beside_a_good_task_the_good_task_is_scheduled(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        w.write("good.yaml", doc("job"))
        w.write("bad.yaml", NULL_CONTAINER)
        assert w.reconcile() == "1 to add, 0 to change, 0 to remove, 0 unchanged"
        assert set(w.scheduler.owned()) == {"default/job"}
        assert w.reconciler.desired.problems == [f"{tmp_path}/bad.yaml:{NULL_PROBLEM}"]
        await w.advance(60)
        assert w.runs() == [("12:01", "schedule", None)]

    async def main() -> None:
        world = World(tmp_path)
        await body(world)
        await world.dispatcher.shutdown(0)

    asyncio.run(main())


def test_validate_says_where_the_null_container_is_and_exits_1(tmp_path: Path) -> None:
    folder = tmp_path / "tasks"
    write(folder / "good.yaml", doc("good"))
    write(folder / "bad.yaml", NULL_CONTAINER)
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(folder)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [f"{folder}/bad.yaml:{NULL_PROBLEM}"]
    assert "Traceback" not in done.stderr
    assert ", 1 task)" in done.stderr  # good.yaml is read as ever


@pytest.fixture
def validation_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    """The JobSpec check raises (as a bug of its would) on an image named ``boom``."""
    real = jobspec.problems

    def broken(spec: Any) -> Any:
        if "boom" in repr(spec):
            raise RuntimeError("boom: the check itself failed")
        return real(spec)

    monkeypatch.setattr(actions, "problems", broken)


@pytest.mark.usefixtures("validation_bug")
def test_a_document_whose_validation_raises_is_its_own_error_and_keeps_its_last_good(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = write(tmp_path / "good.yaml", doc("good"))
    bad = write(tmp_path / "bad.yaml", job_doc("bad", "busybox"))
    source = DirectorySource([tmp_path])
    source.refresh()
    assert set(keys(source)) == {"default/good", "default/bad"}

    write(bad, job_doc("bad", "boom"))
    write(good, doc("good", "@hourly"))
    with caplog.at_level(logging.ERROR, logger="crontask.sources"):
        source.refresh()  # raised RuntimeError: the pass failed, every source with it
    assert keys(source) == {"default/good": "@hourly", "default/bad": "@daily"}
    (error,) = source.errors()
    assert error.key == "default/bad"
    assert str(error) == (
        f"{bad}:1:1: crontask failed to validate this CronTask (RuntimeError): please report it"
    )
    (logged,) = [r for r in caplog.records if r.name == "crontask.sources"]
    assert logged.exc_info is not None
    assert logged.exc_info[0] is RuntimeError
    assert "boom: the check itself failed" not in error.message  # its text may quote the file


@pytest.mark.usefixtures("validation_bug")
def test_the_long_way_and_the_api_store_report_it_the_same(tmp_path: Path) -> None:
    # A text past the plain path's length is read the long way only; the next document still
    # counts (one error, one definition).
    text = job_doc("bad", "boom") + "---\n" + doc("after") + "#" * 70_000 + "\n"
    parsed = parse_text(text, "big.yaml")
    assert [d.key for d in parsed.definitions] == ["default/after"]
    assert [(e.location.line, e.key) for e in parsed.errors] == [(1, "default/bad")]

    stored = read_stored("default/bad", job_doc("bad", "boom"))
    assert isinstance(stored, DefinitionError)
    assert stored.key == "default/bad"
    assert "(RuntimeError)" in stored.message
