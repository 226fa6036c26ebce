"""Which task a document's errors name: in objects run together (``cat a.yaml b.yaml``, no
``---``), the ``metadata`` of the object that says it is a CronTask, the keys split into objects
where a key repeats; a ``metadata`` repeated alone after a CronTask is a stray object's, not
the task's name (as 0.5.0 had it, PyYAML's last); a ``namespace`` present but not a string
names none, one with no value the default namespace (as the model reads it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.sources.documents import parse_text
from reconciler.sources.files import DirectorySource
from tests.sources.test_files import doc, write

BODY = 'spec:\n  schedule: "*/5 * * * *"\n  command:\n    args: ["true"]\n'
API = "apiVersion: crontask.dev/v1alpha1\n"
# A CronTask whose metadata comes before its apiVersion, then a ConfigMap (no ``---``).
META_FIRST = (
    "kind: CronTask\nmetadata: {name: rt34}\n" + API + BODY
    + "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm34}\n"
)  # fmt: skip
META_BEFORE_API = (
    "metadata: {name: rt14}\n" + API + "kind: CronTask\n" + BODY
    + "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm14}\n"
)  # fmt: skip
# The CronTask's own metadata misspelt: the ConfigMap's name is never the task's.
NO_METADATA = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: backup}\ndata: {}\n"
    + API + "kind: CronTask\nmetdata: {name: backup2}\n" + BODY
)  # fmt: skip
DEPLOYMENT_THEN_API = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: dep28}\n" + API
NOTE_THEN_TASK = "kind: Note\nmetadata: {name: note17}\n" + API + "kind: CronTask\n"
NOTE_THEN_TASK += "metadata: {name: rt17}\n" + BODY


def _keys(text: str) -> set[str | None]:
    parsed = parse_text(text, "t.yaml")
    assert parsed.definitions == []
    assert parsed.errors
    return {e.key for e in parsed.errors}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (META_FIRST, "default/rt34"),
        (META_BEFORE_API, "default/rt14"),
        (NOTE_THEN_TASK, "default/rt17"),
        (NO_METADATA, None),
        (DEPLOYMENT_THEN_API + "spec: {}\n", None),
    ],
)
def test_objects_run_together_name_the_cron_tasks_own_metadata(text: str, key: str | None) -> None:
    assert _keys(text) == {key}


def test_a_bound_broken_in_objects_run_together_names_the_task() -> None:
    """The node-based path (a value over the nesting bound) splits the objects the same way."""
    deep = "x: " + "[" * 200 + "]" * 200 + "\n"
    assert _keys(META_FIRST + deep) == {"default/rt34"}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        # A metadata repeated after the task's body: a stray object's, not the task's name.
        (API + "kind: CronTask\nmetadata: {name: first}\n" + BODY + "metadata: {name: second}\n",
         "default/first"),
        ("apiVersion: crontask.dev/v1alpha1\nkind: CronJob\nmetadata: {name: wk1}\n" + BODY
         + "metadata: {name: wk2}\n", "default/wk1"),
        ("metadata: {name: m1}\n" + API + "kind: CronTask\n" + BODY + "metadata: {name: m2}\n",
         "default/m1"),
    ],
)  # fmt: skip
def test_a_stray_metadata_after_a_task_s_body_is_not_its_name(text: str, key: str) -> None:
    assert _keys(text) == {key}


def _broken(namespace: str) -> list[str]:
    """A task of that namespace broken by a repeated key (named from its data) and by a
    value over the nesting bound (named from its nodes)."""
    meta = f"metadata: {{name: ns, namespace: {namespace}}}\n"
    dup = API + "kind: CronTask\n" + meta + 'spec: {schedule: "* * * * *", schedule: x}\n'
    deep = API + "kind: CronTask\n" + meta + "spec: {x: " + "[" * 200 + "]" * 200 + "}\n"
    return [dup, deep]


@pytest.mark.parametrize("namespace", ["1", "yes", "[a]", '""'])
def test_a_namespace_that_is_not_a_string_names_no_task(namespace: str) -> None:
    assert [_keys(text) for text in _broken(namespace)] == [{None}, {None}]


@pytest.mark.parametrize("namespace", ["", "~", "null", "NULL", "!!null ''"])
def test_a_namespace_with_no_value_names_the_task_of_the_default_one(namespace: str) -> None:
    # As the model reads it (core.fields): the task it was when the file was good.
    assert [_keys(text) for text in _broken(namespace)] == [{"default/ns"}, {"default/ns"}]


def test_a_task_moved_into_a_file_where_its_metadata_comes_first_is_kept(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", "kind: CronTask\nmetadata: {name: rt34}\n" + API + BODY)
    write(tmp_path / "b.yaml", doc("other"))
    write(tmp_path / "d.yaml", doc("cm34"))
    source = DirectorySource([tmp_path])
    source.refresh()
    assert {d.key for d in source.definitions()} == {
        "default/rt34",
        "default/other",
        "default/cm34",
    }
    a.unlink()
    write(tmp_path / "c.yaml", META_FIRST)
    source.refresh()
    assert {d.key for d in source.definitions()} == {
        "default/rt34",
        "default/other",
        "default/cm34",
    }
    assert {e.key for e in source.errors()} == {"default/rt34"}
