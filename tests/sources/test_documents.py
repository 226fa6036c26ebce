"""YAML text to definitions: every error at its file:line:col."""

from __future__ import annotations

import contextlib
import gc
import textwrap
from pathlib import Path
from typing import TypeVar

import pytest

from reconciler.core.desired import SourceKind
from reconciler.sources.documents import (
    DEFAULT_LIMITS,
    _parse_with_positions,
    parse_text,
    plain_definitions,
    plain_text,
)
from tests.hostile.corpus import build

T = TypeVar("T")


def not_none(value: T | None) -> T:
    assert value is not None
    return value


GOOD = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata:
  name: backup
  namespace: ops
spec:
  schedule: "0 2 * * *"
  command:
    args: ["true"]
"""


def errors_of(text: str) -> list[str]:
    return [str(e) for e in parse_text(textwrap.dedent(text), "t.yaml").errors]


def test_good_document() -> None:
    parsed = parse_text(GOOD, "t.yaml")
    assert not parsed.errors
    (definition,) = parsed.definitions
    assert definition.key == "ops/backup"
    assert str(definition.location) == "t.yaml:1:1"
    assert definition.task.spec.concurrency_policy == "Forbid"


def test_multi_document_locations_and_empty_documents() -> None:
    text = "---\n" + GOOD + "---\n---\n" + GOOD.replace("backup", "other")
    parsed = parse_text(text, "t.yaml")
    assert [str(d.location) for d in parsed.definitions] == ["t.yaml:2:1", "t.yaml:13:1"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GOOD.replace("  schedule:", "  schedul:"),
            [
                "t.yaml:6:1: spec.schedule: required field is missing",
                "t.yaml:7:3: spec.schedul: unknown field (did you mean 'schedule'?)",
            ],
        ),
        (
            GOOD.replace("name: backup", "name: Backup_1"),
            [
                "t.yaml:4:3: metadata.name: 'Backup_1' is not a DNS-1123 label (lower-case "
                "letters, digits and '-', starting and ending with a letter or digit)"
            ],
        ),
        (
            GOOD + "  timeZone: Europe/Berln\n",
            ["t.yaml:10:3: spec.timeZone: unknown time zone 'Europe/Berln'"],
        ),
        (
            GOOD.replace('args: ["true"]', "args: []"),
            ["t.yaml:9:5: spec.command.args: at least 1 item, not 0"],
        ),
        (
            GOOD.replace('  command:\n    args: ["true"]\n', ""),
            ["t.yaml:6:1: spec: exactly one action is required (command | http | job); found none"],
        ),
        (
            GOOD.replace("kind: CronTask", "kind: CronJob"),
            ["t.yaml:2:1: kind: Input should be 'CronTask'"],
        ),
        (
            GOOD.replace("  namespace: ops\n", "  namespace: ops\n  name: again\n"),
            ["t.yaml:6:3: metadata.name: duplicate key"],
        ),
        (  # 1 and true are equal in Python, not in YAML: no duplicate, a key of the wrong type
            GOOD.replace("  namespace: ops\n", "  namespace: ops\n  labels: {1: x, true: y}\n"),
            [
                "t.yaml:6:18: metadata.labels.1: a string, not the number 1: "
                "quote it to mean the string"
            ],
        ),
        (
            "- just\n- a list\n",
            ["t.yaml:1:1: a map of fields such as apiVersion, kind, metadata, spec (not a list)"],
        ),
    ],
)
def test_errors_point_at_the_field(text: str, expected: list[str]) -> None:
    assert errors_of(text) == expected


def test_schedule_error_points_inside_the_expression() -> None:
    (error,) = parse_text(GOOD.replace('"0 2 * * *"', '"0 25 * * *"'), "t.yaml").errors
    # Line 7 is `  schedule: "0 25 * * *"`; the hour field starts at column 16.
    assert error.location.line == 7
    assert error.location.column == 16
    assert "hour" in error.message


def test_error_keeps_the_task_key_when_it_can() -> None:
    (error,) = parse_text(GOOD.replace("0 2 * * *", "nope"), "t.yaml").errors
    assert error.key == "ops/backup"


def test_documents_of_other_groups_are_ignored() -> None:
    deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {}\n"
    config = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
    parsed = parse_text(deployment + "---\n" + GOOD + "---\n" + config, "t.yaml")
    assert parsed.ignored == 2
    assert [d.key for d in parsed.definitions] == ["ops/backup"]


@pytest.mark.parametrize(
    "version",
    ["crontask.dev.v1alpha1", "Crontask.dev/v1alpha1", "crontask/v1alpha1", "batch/v1"],
)
def test_a_crontask_with_a_mistyped_api_version_is_an_error_not_ignored(version: str) -> None:
    """Ignored, the document would silently remove its task; as an error of its own it keeps
    the task's last good definition (the error names the task)."""
    text = GOOD.replace("crontask.dev/v1alpha1", version)
    (error,) = parse_text(text, "t.yaml").errors
    # A slip of case alone is named (messages.message); other spellings are not guessed at.
    slip = " (did you mean 'crontask.dev/v1alpha1'?)" if version == "Crontask.dev/v1alpha1" else ""
    assert str(error) == "t.yaml:1:1: apiVersion: Input should be 'crontask.dev/v1alpha1'" + slip
    assert error.key == "ops/backup"
    # The other half of reading (in a worker process) leaves it to the long way, not ignored.
    plain = not_none(plain_text(text))
    assert plain.ignored == 0
    assert plain_definitions(plain, "t.yaml") is None
    # Saying CronTask, or starting like ours, is enough; another group's other kind is not.
    other_kind = text.replace("kind: CronTask", "kind: Backup")
    assert parse_text(other_kind, "t.yaml").ignored == (version == "batch/v1")


def test_a_document_without_group_must_be_a_crontask() -> None:
    assert errors_of("kind: CronTask\nmetadata: {name: x}\nspec: {}\n")[0] == (
        "t.yaml:1:1: apiVersion: required field is missing: give it the value "
        "'crontask.dev/v1alpha1'"
    )


def test_yaml_syntax_error_is_one_error_at_its_position() -> None:
    # The wording comes from the YAML parser (libyaml or PyYAML's); the place is ours.
    (error,) = errors_of("apiVersion: crontask.dev/v1alpha1\nspec: [unclosed\n")
    assert error.startswith("t.yaml:3:1: YAML syntax error: ")
    assert "']'" in error


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("a: &x [*x]\n", "t.yaml:1:4:"),  # the plain fast path
        (GOOD.replace("spec:\n", "spec: &s\n  self: *s\n"), "t.yaml:6:7:"),
        (GOOD.replace("spec:\n", "spec: !!map &s\n  self: *s\n"), "t.yaml:6:7:"),  # tagged
    ],
)
def test_a_recursive_alias_is_an_error_not_a_crash(text: str, where: str) -> None:
    (error,) = errors_of(text)
    assert error == f"{where} recursive YAML alias: this value contains itself"


def test_very_deep_nesting_is_an_error_not_a_crash() -> None:
    deep = "spec: " + "[" * 3000 + "]" * 3000 + "\n"
    (error,) = errors_of(deep)
    assert error.startswith("t.yaml:1:")


def test_reading_leaves_no_garbage_for_the_cyclic_collector() -> None:
    # Start-up reads every document once: garbage in reference cycles (a recursive closure
    # per document did that) is what the cyclic collector then walks the whole heap to find.
    text = GOOD.replace('"0 2 * * *"', '"0 2 * * *"\n  startingDeadlineSeconds: 30')
    parse_text(text, "t.yaml")  # imports and caches warmed outside the measurement
    gc.collect()
    gc.disable()
    try:
        parsed = parse_text(text, "t.yaml")
        assert parsed.definitions
        assert not parsed.errors
        del parsed
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_short_values_repeated_across_tasks_are_kept_once() -> None:
    # The definitions live as long as their tasks: a namespace or a command written in every
    # task is one string in memory, not one per task.
    parsed = parse_text(GOOD + "---\n" + GOOD.replace("backup", "restore"), "t.yaml")
    first, second = (d.task for d in parsed.definitions)
    assert first.metadata.name != second.metadata.name
    assert first.metadata.namespace is second.metadata.namespace
    assert first.spec.schedule is second.spec.schedule
    assert first.spec.command is not None
    assert second.spec.command is not None
    assert first.spec.command.args[0] is second.spec.command.args[0]


def test_the_plain_path_reads_what_the_long_way_reads(tmp_path: Path) -> None:
    """``parse_text`` first tries the whole text as plain data (``plain_text``, the half that
    runs in a worker when a folder is read ahead), then takes the long way. Whichever way a
    text goes, the result is what the long way alone gives: for every readable file of the
    hostile corpus, and for good texts of every shape the plain path takes."""
    build(tmp_path / "corpus", tmp_path / "scratch")
    texts = []
    for path in sorted((tmp_path / "corpus").rglob("*")):
        # is_symlink first: Path.is_file raises on 3.11 for a link it may not follow (/proc/1/cwd)
        if not path.is_symlink() and path.is_file() and path.stat().st_size < 4 * 1024 * 1024:
            with contextlib.suppress(UnicodeDecodeError):
                texts.append(path.read_text())
    other = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
    plain = [
        GOOD,
        "---\n" + GOOD + "---\n---\n" + GOOD.replace("backup", "other") + "---\n" + other,
        GOOD.replace('"0 2 * * *"', "'@daily'\n  timeoutSeconds: 30\n  suspend: true"),
        other,
        "",
    ]
    for text in plain:
        assert plain_text(text) is not None  # these take the plain path
    broken = GOOD.replace("0 2", "61 2")
    assert plain_text(broken) is not None
    assert plain_definitions(not_none(plain_text(broken)), "t.yaml") is None  # invalid: long way
    for text in [*plain, broken, *texts]:
        long_way = _parse_with_positions(text, "t.yaml", SourceKind.FILE, None, DEFAULT_LIMITS)
        assert parse_text(text, "t.yaml") == long_way
    assert len(texts) > 20
