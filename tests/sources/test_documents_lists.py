"""A list of CronTasks in one document (what ``kubectl get ct -o yaml`` writes) is an error.

crontask reads each CronTask as its own YAML document; a ``kind: List`` that holds CronTasks
was once counted among the documents of other API groups and ignored, so the file declared no
task and nothing said why. Lists of other objects are still ignored.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.sources.documents import parse_text, plain_text
from reconciler.sources.files import DirectorySource

TASK = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: backup, namespace: ops}
spec: {schedule: "0 2 * * *", command: {args: ["true"]}}
"""

EXPORTED = """\
apiVersion: v1
kind: List
items:
- apiVersion: crontask.dev/v1alpha1
  kind: CronTask
  metadata:
    name: backup
    namespace: ops
    uid: 0b5e4f4e-5c1a-4e8e-9d0b-6a0c1f3f2a11
    resourceVersion: "4711"
    creationTimestamp: "2026-01-01T00:00:00Z"
    generation: 1
  spec: {schedule: "0 3 * * *", command: {args: ["true"]}}
  status: {}
metadata:
  resourceVersion: ""
"""


def assert_explains_lists(message: str) -> None:
    assert "its own YAML document" in message
    assert "---" in message
    for field in ("metadata.uid", "resourceVersion", "creationTimestamp", "generation", "status"):
        assert field in message


def test_an_exported_list_of_crontasks_is_an_error_at_its_document() -> None:
    text = TASK + "---\n" + EXPORTED
    parsed = parse_text(text, "t.yaml")
    (error,) = parsed.errors
    assert (error.location.line, error.location.column) == (6, 1)
    assert error.key is None  # a list may hold many tasks: it names none of them
    assert_explains_lists(error.message)
    assert parsed.ignored == 0
    # The task next to the list is read, but the file has an error: it is applied whole or not.
    assert [d.key for d in parsed.definitions] == ["ops/backup"]
    # The half of reading done in a worker process leaves it to the long way, which places it.
    assert plain_text(text) is None


@pytest.mark.parametrize(
    "head",
    [
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTaskList\n",
        "apiVersion: v1\nkind: CronTaskList\n",
    ],
)
def test_a_crontasklist_is_the_same_error(head: str) -> None:
    text = head + "metadata: {}\nitems: []\n"
    (error,) = parse_text(text, "t.yaml").errors
    assert (error.location.line, error.location.column) == (1, 1)
    assert_explains_lists(error.message)


def test_an_item_that_only_says_crontask_counts() -> None:
    text = "apiVersion: v1\nkind: List\nitems:\n- kind: CronTask\n  metadata: {name: x}\n"
    (error,) = parse_text(text, "t.yaml").errors
    assert_explains_lists(error.message)


@pytest.mark.parametrize(
    "items",
    [
        "items: []\n",
        "items:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c}\n",
        "items: not-a-list\n",
        "",
    ],
)
def test_a_list_of_other_objects_is_still_ignored(items: str) -> None:
    text = TASK + "---\napiVersion: v1\nkind: List\n" + items
    parsed = parse_text(text, "t.yaml")
    assert parsed.errors == []
    assert parsed.ignored == 1
    assert [d.key for d in parsed.definitions] == ["ops/backup"]


def write(path: Path, text: str) -> None:
    path.write_text(text)
    # Make the rewrite visible to the (mtime, size, inode) check even within one tick.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def test_a_file_turned_into_a_list_keeps_its_last_good_tasks(tmp_path: Path) -> None:
    """Replacing a task file by an export of the cluster's tasks stops nothing: the file has an
    error, so its tasks keep running as they were, and the error says what to do."""
    file = tmp_path / "tasks.yaml"
    write(file, TASK)
    source = DirectorySource([tmp_path])
    source.refresh()
    write(file, EXPORTED)
    source.refresh()
    assert {d.key: d.task.spec.schedule for d in source.definitions()} == {
        "ops/backup": "0 2 * * *"
    }
    (error,) = source.errors()
    assert str(error).startswith(f"{file}:1:1: ")


def test_a_list_whose_kind_comes_from_a_merge_key_is_the_same_error() -> None:
    text = (
        "<<: {apiVersion: v1, kind: List}\n"
        "items:\n- {apiVersion: crontask.dev/v1alpha1, kind: CronTask, metadata: {name: x}}\n"
    )
    (error,) = parse_text(text, "t.yaml").errors
    assert (error.location.line, error.location.column) == (1, 1)
    assert_explains_lists(error.message)
