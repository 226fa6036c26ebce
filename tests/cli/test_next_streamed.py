"""``crontask next FOLDER`` prints each task's slots as they are worked out, a task at a time
(text and ``--json``): it worked out every slot of every task first (10 000 tasks at
``-n 1000``: 0.9 GB, 2.3 GB with ``--json``, and nothing printed for 27 s). Seen from outside:
when the last task's slots are worked out, the first task's are already written. And the
``--json`` shape says how the task was asked for, not how many matched: a file, a folder or
``--task`` gives ``{"items": [...]}`` whatever they hold (one task was a bare object, two an
``items`` list: ``jq .next`` turned null when a second task was added); a task named by its
KEY from a server stays one object (tests/cli/test_next_key.py). Real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FROM = "2026-11-26T00:00:00Z"
TASK = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {{name: {name}}}\n"
    'spec: {{schedule: "*/5 * * * *", command: {{args: ["true"]}}}}\n'
)
# In the child, before its command runs: when the last task's schedule is asked for (its slots
# are worked out next), how many bytes its stdout, a file, holds already.
HOOK = """\
import os
import reconciler.cli.definitions as definitions
_schedule_of = definitions.schedule_of
def _noted(definition):
    if definition.key == "default/zz-last":
        with open({seen!r}, "w") as seen:
            seen.write(str(os.fstat(1).st_size))
    return _schedule_of(definition)
definitions.schedule_of = _noted
"""


def tasks(folder: Path, names: list[str]) -> Path:
    folder.mkdir()
    (folder / "t.yaml").write_text("---\n".join(TASK.format(name=n) for n in names))
    return folder


def next_into(out: Path, *argv: str, hook: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``crontask next *argv``, its stdout the file ``out``, ``hook`` (a folder holding a
    ``sitecustomize``) first on its path."""
    path = os.pathsep.join(str(p) for p in (hook, ROOT) if p is not None)
    with out.open("w") as stdout:
        return subprocess.run(
            [sys.executable, "-m", "reconciler", "next", *argv, "--from", FROM],
            env={**os.environ, "PYTHONPATH": path},
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.mark.parametrize("as_json", [False, True])
def test_the_first_task_is_written_before_the_last_ones_slots_are_worked_out(
    tmp_path: Path, as_json: bool
) -> None:
    folder = tasks(tmp_path / "tasks", [f"t{i:03}" for i in range(200)] + ["zz-last"])
    hook, seen = tmp_path / "hook", tmp_path / "seen"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK.format(seen=str(seen)))
    out = tmp_path / "out"
    done = next_into(out, str(folder), "-n", "50", *(["--json"] if as_json else []), hook=hook)
    assert (done.returncode, done.stderr) == (0, "")
    written_before = int(seen.read_text())  # the hook ran: the last task was asked for
    first_task = out.read_text().split("default/t001")[0]  # up to the second task
    assert "default/t000" in first_task
    assert written_before >= len(first_task.encode()), (written_before, len(first_task))


def test_json_of_a_folder_is_an_items_list_laid_out_as_json_dumps(tmp_path: Path) -> None:
    folder = tasks(tmp_path / "tasks", ["b", "a", "c"])
    out = tmp_path / "out"
    done = next_into(out, str(folder), "-n", "2", "--json")
    assert (done.returncode, done.stderr) == (0, "")
    text = out.read_text()
    document = json.loads(text)
    assert text == json.dumps(document, indent=2) + "\n"  # byte for byte, streamed or not
    assert [item["task"] for item in document["items"]] == ["default/a", "default/b", "default/c"]
    assert document["items"][0]["next"] == [
        "2026-11-26T00:05:00+00:00",
        "2026-11-26T00:10:00+00:00",
    ]


@pytest.mark.parametrize(
    "where", [("t.yaml",), (".",), (".", "--task", "b"), ("t.yaml", "--task", "default/b")]
)
def test_json_is_an_items_list_whatever_a_file_or_folder_holds(
    tmp_path: Path, where: tuple[str, ...]
) -> None:
    """One task or two, the same shape: a script's ``.items[0].next`` keeps working."""
    for names in (["b"], ["b", "a"]):
        folder = tmp_path / "-".join(names)
        tasks(folder, names)
        path, *more = where
        out = tmp_path / "out"
        done = next_into(out, str(folder / path), *more, "-n", "1", "--json")
        assert (done.returncode, done.stderr) == (0, "")
        document = json.loads(out.read_text())
        assert list(document) == ["items"], document
        wanted = ["default/b"] if more or names == ["b"] else ["default/a", "default/b"]
        assert [item["task"] for item in document["items"]] == wanted


def test_a_definition_error_still_lists_the_valid_tasks_and_fails(tmp_path: Path) -> None:
    folder = tasks(tmp_path / "tasks", ["a"])
    (folder / "broken.yaml").write_text(TASK.format(name="b").replace("*/5", "*/99 *"))
    out = tmp_path / "out"
    done = next_into(out, str(folder), "-n", "1", "--json")
    assert done.returncode == 1
    assert "broken.yaml" in done.stderr
    assert [item["task"] for item in json.loads(out.read_text())["items"]] == ["default/a"]
