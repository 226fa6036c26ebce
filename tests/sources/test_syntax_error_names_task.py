"""A CronTask document with a YAML syntax error still names its task, as one with a schema
error does: a task moved to another file and broken in the same change (``git mv`` and a typo
in one commit, an unclosed ``]``) keeps its last good definition while the broken document
names it (README, "How definitions are read"). The parser stops at the error, so the name is
read from the document's parse events before it, and only when the document said plainly, before
the error, that it is a CronTask and what its ``metadata`` is: no later key can change them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reconciler.sources import documents
from reconciler.sources.documents import parse_text
from reconciler.sources.files import DirectorySource
from reconciler.sources.git import GitOptions, GitSource
from reconciler.sources.limits import YamlLimits
from tests.sources.test_files import write
from tests.sources.test_git import Clock, Remote, isolate_git, schedules, synced

HEAD = "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"
SPEC = 'spec:\n  schedule: "{schedule}"\n  command:\n    args: ["true"]\n'
UNCLOSED = 'spec:\n  schedule: "{schedule}"\n  command:\n    args: ["true"\n'  # ] lost
LOADERS = [getattr(yaml, "CSafeLoader", yaml.SafeLoader), yaml.SafeLoader]


@pytest.fixture(params=LOADERS, ids=lambda loader: loader.__name__)
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """libyaml's parser and PyYAML's: the same events, errors and marks."""
    monkeypatch.setattr(documents, "_Loader", request.param)


def task(name: str, schedule: str = "0 2 * * *", *, broken: bool = False) -> str:
    """A CronTask as people write it; ``broken``: its last ``]`` lost (an error on line 8)."""
    body = UNCLOSED if broken else SPEC
    return HEAD + f"metadata:\n  name: {name}\n" + body.format(schedule=schedule)


def key(text: str, limits: YamlLimits | None = None) -> str | None:
    """The key of the one error ``text`` has: a syntax error, reported as before."""
    parsed = parse_text(text, "t.yaml", limits=limits or YamlLimits())
    (error,) = parsed.errors
    assert "YAML syntax error" in error.message or "undefined alias" in error.message, error
    return error.key


@pytest.mark.usefixtures("loader")
def test_the_readme_case_names_the_task_at_the_error() -> None:
    parsed = parse_text(task("moved", broken=True), "t.yaml")
    assert parsed.definitions == []
    (error,) = parsed.errors
    assert str(error).startswith("t.yaml:9:1: YAML syntax error: ")  # each parser's words
    assert error.key == "default/moved"


@pytest.mark.usefixtures("loader")
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The names in any style a full read takes as strings, flow metadata included.
        (HEAD + "metadata: {name: a, namespace: ops}\nspec: [\n", "ops/a"),
        (HEAD + "metadata:\n  namespace: 'ops'\n  name: \"a\"\nspec: {x: [}\n", "ops/a"),
        (HEAD + "metadata:\n  name: !!str a\nspec:\n  x: 'unclosed\n", "default/a"),
        (HEAD + "metadata:\n  name: &n a\nspec:\n\tschedule: x\n", "default/a"),  # a tab
        ("\ufeff" + HEAD + "metadata: {name: a}\nspec: [\n", "default/a"),  # a byte order mark
        # apiVersion and kind anywhere before the error, and either one alone says it.
        ("metadata: {name: a}\nkind: CronTask\nspec: [\n", "default/a"),
        ("apiVersion: crontask.dev/v1\nmetadata: {name: a}\nspec: [\n", "default/a"),
        # An alias bomb before the error is not expanded: its events are a few.
        (HEAD + "metadata: {name: a}\nx: &a [1, 1]\ny: &b [*a, *a, *a]\nz: [*b, *b\n", "default/a"),
        # An undefined alias is the composer's error, after the name.
        (HEAD + "metadata: {name: a}\nspec: {args: [*nope]}\n", "default/a"),
        # A namespace with no value is the default one, as the model reads it (core.fields).
        (HEAD + "metadata:\n  name: a\n  namespace:\nspec: [\n", "default/a"),
        (HEAD + "metadata: {namespace: ~, name: a}\nspec: [\n", "default/a"),
        (HEAD + "metadata: {name: a, namespace: null}\nspec: {x: [}\n", "default/a"),
        (HEAD + "metadata:\n  name: a\n  namespace: !!null ''\nspec: [\n", "default/a"),
    ],
)
def test_a_document_that_said_its_name_before_the_error_names_its_task(
    text: str, expected: str
) -> None:
    assert key(text) == expected


@pytest.mark.usefixtures("loader")
@pytest.mark.parametrize(
    "text",
    [
        # The error before the name, or inside metadata: a namespace could have followed.
        HEAD + "metadata:\n  name: [a\n",
        HEAD + "spec: [\nmetadata: {name: a}\n",
        HEAD + "metadata:\n  name: a\n  namespace: [ops\n",
        HEAD + "metadata: {name: a, namespace: ops\n",
        # The name is no plain string: an alias, a mapping, a list, a number, a bad label.
        HEAD + "x: &n a\nmetadata:\n  name: *n\nspec: [\n",
        HEAD + "metadata:\n  name: {a: b}\nspec: [\n",
        HEAD + "metadata:\n  name: [a]\nspec: [\n",
        HEAD + "metadata:\n  name: 123\nspec: [\n",
        HEAD + "metadata:\n  name: Not_A_Label\nspec: [\n",
        HEAD + "metadata:\n  name: a\n  namespace: 1\nspec: [\n",
        HEAD + "metadata:\n  name: a\n  namespace: ''\nspec: [\n",  # refused by the model
        HEAD + "metadata:\n  name:\n  namespace: ops\nspec: [\n",  # no name: no task
        # metadata no plain mapping, or brought in by an alias or a merge key.
        HEAD + "m: &m {name: a}\nmetadata: *m\nspec: [\n",
        HEAD + "m: &m {name: a}\nmetadata:\n  <<: *m\nspec: [\n",
        HEAD + "metadata: !other {name: a}\nspec: [\n",
        HEAD + "metadata: a\nspec: [\n",
        # Not said to be a CronTask before the error: it may be another group's object.
        "metadata: {name: a}\nspec: [\nkind: CronTask\n",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: [\n",
        # Keys repeated before the error: objects run together, or a name said twice.
        HEAD + "metadata: {name: a}\napiVersion: v1\nspec: [\n",
        HEAD + "metadata: {name: a}\nmetadata: {name: b}\nspec: [\n",
        HEAD + "metadata: {name: a, name: b}\nspec: [\n",
        # A key that could be anything (an alias), and a document that is no mapping.
        HEAD + "k: &k metadata\n*k : {name: a}\nspec: [\n",
        "- " + HEAD.replace("\n", "\n  ") + "metadata: {name: a}\n  spec: [\n",
    ],
)
def test_a_document_that_did_not_say_its_name_plainly_names_nothing(text: str) -> None:
    assert key(text) is None


@pytest.mark.usefixtures("loader")
def test_several_documents_the_broken_one_names_its_task() -> None:
    text = task("good") + "---\n" + task("broken", broken=True) + "---\n" + task("after")
    parsed = parse_text(text, "t.yaml")
    assert [d.key for d in parsed.definitions] == ["default/good"]
    assert [(e.location.line, e.key) for e in parsed.errors] == [(18, "default/broken")]
    # An error after a document ended (``...``), before the next one started, is none's; so
    # is one in a document that has not said a word, after the ``---`` that starts it.
    for end in ("...\n]\n", "...\n%YAML 1.1\n%YAML 1.1\n---\n", "---\n]\n"):
        parsed = parse_text(task("good") + end, "t.yaml")
        assert [d.key for d in parsed.definitions] == ["default/good"]
        assert [e.key for e in parsed.errors] == [None]
    # A stray ']' at column 1 is in the document before it, which never ended.
    parsed = parse_text(task("good") + "]\n", "t.yaml")
    assert parsed.definitions == []
    assert [(e.location.line, e.key) for e in parsed.errors] == [(9, "default/good")]
    # A broken document after one that names nothing plainly, or is another group's.
    other = "apiVersion: v1\nkind: ConfigMap\nx: &x a\nmetadata: {name: *x}\n"
    text = "apiVersion: v1\nkind: Secret\n---\n" + other + "---\n" + task("b", broken=True)
    assert key(text) == "default/b"


@pytest.mark.usefixtures("loader")
def test_the_reading_of_the_name_has_the_bounds_of_the_reading() -> None:
    # A huge document: a 900 KB script before the error is one value; it is named.
    script = "x" * 900_000
    text = HEAD + "metadata: {name: big}\n" + f"script: {script}\n" + "spec: [\n"
    assert key(text) == "default/big"
    # More values before the error than one document may count: named by none.
    limits = YamlLimits(max_values=50)
    values = "[" + ", ".join(["1"] * 30) + "]"
    assert key(HEAD + f"metadata: {{name: a}}\nx: {values}\nspec: [\n", limits) == "default/a"
    values = "[" + ", ".join(["1"] * 60) + "]"
    assert key(HEAD + f"metadata: {{name: a}}\nx: {values}\nspec: [\n", limits) is None
    # Nested deeper than a document may be: named by none.
    limits = YamlLimits(max_depth=5)
    assert key(HEAD + "metadata: {name: a}\nx: [[[[1]]]]\nspec: [\n", limits) == "default/a"
    assert key(HEAD + "metadata: {name: a}\nx: [[[[[[1]]]]]]\nspec: [\n", limits) is None
    # The broken document past the file's documents: not read, named by none.
    limits = YamlLimits(max_documents=2)
    texts = ["apiVersion: v1\nkind: ConfigMap\n---\n" * n + task("b", broken=True) for n in (1, 2)]
    assert [key(text, limits) for text in texts] == ["default/b", None]


def test_a_folder_keeps_a_task_moved_and_broken_by_a_syntax_error(tmp_path: Path) -> None:
    old = write(tmp_path / "moved.yaml", task("moved") + "---\n" + task("other"))
    write(tmp_path / "keep.yaml", task("keep"))
    source = DirectorySource([tmp_path])
    source.refresh()
    old.unlink()
    new = write(tmp_path / "renamed.yaml", task("moved", "0 3 * * *", broken=True))
    source.refresh()
    # "other" was removed on purpose; "moved" keeps its last good definition, with the error.
    definitions = {d.key: d for d in source.definitions()}
    assert sorted(definitions) == ["default/keep", "default/moved"]
    (error,) = source.errors()
    assert str(error) == (
        f"{new}:9:1: YAML syntax error: did not find expected ',' or ']' "
        "(inside the '[' that starts at line 8, column 11)"
    )
    assert definitions["default/moved"].task.spec.schedule == "0 2 * * *"
    assert definitions["default/moved"].error == str(error)
    # Fixed: the new definition.
    write(new, task("moved", "0 3 * * *"))
    source.refresh()
    assert {d.key: d.task.spec.schedule for d in source.definitions()} == {
        "default/keep": "0 2 * * *",
        "default/moved": "0 3 * * *",
    }
    assert source.errors() == []


@pytest.mark.parametrize("empty", ["", " ~", " null"])
def test_a_folder_keeps_a_task_with_an_empty_namespace_moved_and_broken(
    tmp_path: Path, empty: str
) -> None:
    """``namespace:`` with no value is ``default`` (as the model reads it): the broken document
    named no task, and the task moved into it was removed."""

    def with_namespace(text: str) -> str:
        return text.replace("  name: moved\n", f"  name: moved\n  namespace:{empty}\n")

    old = write(tmp_path / "moved.yaml", with_namespace(task("moved")))
    source = DirectorySource([tmp_path])
    source.refresh()
    assert [d.key for d in source.definitions()] == ["default/moved"]
    old.unlink()
    new = write(tmp_path / "renamed.yaml", with_namespace(task("moved", "0 3 * * *", broken=True)))
    source.refresh()
    (error,) = source.errors()
    assert str(error) == (
        f"{new}:10:1: YAML syntax error: did not find expected ',' or ']' "
        "(inside the '[' that starts at line 9, column 11)"
    )
    assert error.key == "default/moved"
    (kept,) = source.definitions()
    assert (kept.key, kept.task.spec.schedule, kept.error) == (
        "default/moved",
        "0 2 * * *",
        str(error),
    )


def test_git_keeps_a_task_moved_and_broken_by_a_syntax_error_in_one_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reviewer's reproduction: ``git mv moved.yaml renamed.yaml`` and an unclosed ``]``
    on line 8 in one commit removed the task."""
    isolate_git(monkeypatch, tmp_path)
    remote = Remote(tmp_path)
    remote.write("keep.yaml", task("keep"))
    remote.write("moved.yaml", task("moved"))
    good = remote.commit()
    source = GitSource(GitOptions(remote.url), tmp_path / "state", clock=Clock())
    assert synced(source)
    remote.git("mv", "moved.yaml", "renamed.yaml")
    remote.write("renamed.yaml", task("moved", broken=True))
    broken = remote.commit()
    assert synced(source)
    assert schedules(source) == {"default/keep": "0 2 * * *", "default/moved": "0 2 * * *"}
    (error,) = source.errors()
    assert str(error) == (
        "renamed.yaml:9:1: YAML syntax error: did not find expected ',' or ']'"
        f" (inside the '[' that starts at line 8, column 11) (revision {broken[:12]})"
    )
    (moved,) = [d for d in source.definitions() if d.key == "default/moved"]
    assert (moved.location.revision, moved.error) == (good, str(error))
