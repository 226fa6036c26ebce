"""Which ``metadata`` is a CronTask's when objects run together (no ``---``) and a key order
leaves room for doubt. The keys are split into objects where a key repeats; the boundary may
lie a few header keys (``apiVersion``, ``kind``, ``metadata``) earlier, and is put where each
object keeps its header keys before its other keys (``documentkeys``). So a ``metadata`` after
a CronTask's ``spec`` and before another object's ``apiVersion`` is that object's: the CronTask
has none and its errors name no task, never the other object's name. A lone ``metadata`` block
after a CronTask is another object too: the task is named by its own ``metadata``, and the
error says on which lines the objects start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.sources.documents import parse_text
from tests.sources.test_documents_run_together import DEPLOYMENT, TASK
from tests.sources.test_files import doc, write

API = "apiVersion: crontask.dev/v1alpha1\n"
BODY = 'spec:\n  schedule: "*/5 * * * *"\n  command:\n    args: ["true"]\n'
NO_METADATA = API + "kind: CronTask\n" + BODY  # lines 1-6
# A ConfigMap whose metadata comes before its apiVersion, appended without `---`.
CONFIGMAP = "metadata:\n  name: report-settings\napiVersion: v1\nkind: ConfigMap\ndata: {}\n"
STRAY = "metadata:\n  name: cleanup\n"  # a lone metadata block, no apiVersion or kind
OURS = "default/keep-me"  # TASK's name


def _errors(text: str) -> list[tuple[str, str | None]]:
    parsed = parse_text(text, "t.yaml")
    assert parsed.definitions == []
    assert parsed.ignored == 0
    return [(str(e), e.key) for e in parsed.errors]


def _note(*lines: int, task: int) -> str:
    shown = ", ".join(map(str, lines[:-1])) + f" and {lines[-1]}"
    return f"objects at lines {shown} run together, no '---' between them: the CronTask is the one at line {task}"  # noqa: E501


def test_a_task_without_metadata_names_no_task_after_the_next_object() -> None:
    assert _errors(NO_METADATA + CONFIGMAP) == [
        ("t.yaml:9:1: apiVersion: duplicate key", None),
        ("t.yaml:10:1: kind: duplicate key", None),
    ]


@pytest.mark.parametrize(
    "text",
    [
        TASK + CONFIGMAP,  # the task's metadata in its usual place
        NO_METADATA + "metadata: {name: keep-me}\n" + DEPLOYMENT,  # after its spec: the
        # Deployment has a metadata of its own
    ],
)
def test_a_task_with_metadata_of_its_own_is_named_by_it(text: str) -> None:
    assert {key for _, key in _errors(text)} == {OURS}


def test_a_stray_metadata_after_a_task_is_not_its_name() -> None:
    assert _errors(TASK + STRAY) == [
        (f"t.yaml:9:1: metadata: duplicate key ({_note(1, 9, task=1)})", OURS),
    ]


def test_a_stray_metadata_before_a_task_is_not_its_name() -> None:
    assert _errors(STRAY + TASK) == [
        (f"t.yaml:5:1: metadata: duplicate key ({_note(1, 3, task=3)})", OURS),
    ]


def test_a_task_repeating_a_field_of_its_own_is_one_object() -> None:
    """A repeated ``spec`` starts no object with a header: the message says nothing of one."""
    assert _errors(TASK + "spec: {}\n") == [("t.yaml:9:1: spec: duplicate key", OURS)]


def _crontask(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_plan_keeps_the_task_not_the_stray_block_s_name(tmp_path: Path) -> None:
    """The task a broken file keeps is the one it names: with the stray block's name, a task
    moved into such a file was planned for removal and another one kept in its place."""
    write(tmp_path / "old" / "tasks.yaml", TASK + "---\n" + doc("cleanup"))
    write(tmp_path / "new" / "moved.yaml", TASK + STRAY)
    done = _crontask("plan", str(tmp_path / "new"), "--against", str(tmp_path / "old"))
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert f"  {OURS}  (kept as it is: its new definition has errors)" in lines
    assert any(line.startswith("- default/cleanup ") for line in lines), done.stdout
    assert f"! {tmp_path / 'new' / 'moved.yaml'}:9:1: metadata: duplicate key (" in done.stdout


def test_plan_removes_nothing_for_a_task_that_names_none(tmp_path: Path) -> None:
    """An error that names no task keeps every task in force the text does not yield (as a
    syntax error does): before, the other object's name was kept and the rest removed."""
    write(tmp_path / "old" / "tasks.yaml", doc("report-settings") + "---\n" + doc("backup"))
    write(tmp_path / "new" / "moved.yaml", NO_METADATA + CONFIGMAP)
    done = _crontask("plan", str(tmp_path / "new"), "--against", str(tmp_path / "old"))
    assert done.returncode == 1, done.stderr
    assert "0 to remove" in done.stdout, done.stdout
    assert f"{tmp_path / 'new' / 'moved.yaml'}:9:1: apiVersion: duplicate key" in done.stdout


def test_the_message_names_a_few_objects_however_many_run_together() -> None:
    (error,) = _errors(TASK + STRAY * 5)[:1]
    assert error == (
        "t.yaml:9:1: metadata: duplicate key (objects at lines 1, 9, 11 and 3 more run together,"
        " no '---' between them: the CronTask is the one at line 1)",
        OURS,
    )


@pytest.mark.parametrize(
    "order",
    [
        ("apiVersion", "kind", "spec", "metadata"),  # metadata last
        ("apiVersion", "spec", "metadata", "kind"),  # kind last
        ("kind", "apiVersion", "spec", "metadata"),
    ],
)
def test_a_task_repeating_its_own_spec_is_named_by_its_metadata_wherever_it_is(
    order: tuple[str, ...],
) -> None:
    # One object repeating a field of its own, whatever its key order: not split, and the
    # message is the plain one (the split moved its metadata away and named no task).
    parts = {
        "apiVersion": API,
        "kind": "kind: CronTask\n",
        "metadata": "metadata: {name: keep-me}\n",
        "spec": BODY,
    }
    text = "".join(parts[key] for key in order) + "spec: {}\n"
    ((message, key),) = _errors(text)
    assert key == OURS
    assert message.endswith("spec: duplicate key"), message


def test_another_object_s_metadata_never_names_a_task_without_one() -> None:
    # A ConfigMap whose metadata comes last, then a CronTask without metadata: the ConfigMap's
    # metadata is its own, never moved into the task to name it.
    configmap = "apiVersion: v1\nkind: ConfigMap\ndata: {}\nmetadata:\n  name: report-settings\n"
    assert {key for _, key in _errors(configmap + NO_METADATA)} == {None}
