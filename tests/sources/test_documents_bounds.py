"""YAML that tries to make reading expensive, or to be echoed: every bound is an error at the
node that breaks it, and the work stays in proportion to the text."""

from __future__ import annotations

import itertools
import time

import pytest

from reconciler.sources.documents import PRESCAN_LENGTH, parse_text
from reconciler.sources.limits import YamlLimits, excerpt

HEAD = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: bomb}\n"
    'spec:\n  schedule: "* * * * *"\n'
)
NAMES = "abcdefghi"


def sequence_bomb() -> str:
    """Nine anchors of nine items, each made of the one before: 9^9 strings once expanded."""
    lines = ["  x:", "    a: &a [x, x, x, x, x, x, x, x, x]"]
    for before, name in itertools.pairwise(NAMES):
        lines.append(f"    {name}: &{name} [" + ", ".join([f"*{before}"] * 9) + "]")
    return HEAD + "\n".join(lines) + "\n  command:\n    args: *i\n"


def mapping_bomb() -> str:
    lines = ["a: &a {k0: x, k1: x, k2: x, k3: x, k4: x, k5: x, k6: x, k7: x, k8: x}"]
    for before, name in itertools.pairwise(NAMES):
        items = ", ".join(f"k{n}: *{before}" for n in range(9))
        lines.append(f"{name}: &{name} {{{items}}}")
    return "\n".join(lines) + "\n"


def merge_bomb() -> str:
    """Merge keys of merge keys: 9^9 values for any walk of the document as written."""
    lines = ["a: &a {k0: 0, k1: 1, k2: 2, k3: 3, k4: 4, k5: 5, k6: 6, k7: 7, k8: 8}"]
    for before, name in itertools.pairwise(NAMES):
        lines.append(f"{name}: &{name} {{<<: [" + ", ".join([f"*{before}"] * 9) + "]}")
    return "\n".join(lines) + "\n"


def only_error(text: str, limits: YamlLimits | None = None) -> str:
    parsed = parse_text(text, "t.yaml", limits=limits or YamlLimits())
    (error,) = parsed.errors
    assert parsed.definitions == []
    return str(error)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        # The first anchor whose value expands past 10 000 values: `&e` (9^5 > 10 000).
        (sequence_bomb(), "t.yaml:11:8:"),
        (mapping_bomb(), "t.yaml:4:4:"),
        # The merge list of `d` (its value: 9^4 pairs of two values).
        (merge_bomb(), "t.yaml:4:12:"),
    ],
    ids=["sequences", "mappings", "merge-keys"],
)
def test_an_alias_bomb_is_an_error_at_the_anchor_that_expands_too_far(
    text: str, where: str
) -> None:
    assert len(text) < 1000  # a few hundred bytes
    started = time.process_time()
    error = only_error(text)
    # Generous: the point is milliseconds, not the minutes and gigabytes of an expansion.
    assert time.process_time() - started < 1.0
    assert error.startswith(where)
    assert "YAML aliases expand this value to more than 10000 values" in error


def test_the_bomb_is_caught_by_the_fast_path_and_the_long_way_alike() -> None:
    # A duplicate key sends the document the long way (positions, PyYAML's constructor).
    tagged = sequence_bomb().replace("  x:\n", "  x: !!map\n")
    assert only_error(tagged).startswith("t.yaml:11:8:")


def test_small_anchors_and_merge_keys_still_work() -> None:
    text = (
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: a}\n"
        "spec:\n"
        '  schedule: "* * * * *"\n'
        "  retry: &retry {limit: 2, backoffSeconds: 5}\n"
        "  command:\n"
        '    args: &args ["echo", "hi"]\n'
        "    env: {<<: {A: '1'}, B: '2'}\n"
    )
    parsed = parse_text(text, "t.yaml")
    assert parsed.errors == []
    (definition,) = parsed.definitions
    assert definition.task.spec.command is not None
    assert definition.task.spec.command.env == {"A": "1", "B": "2"}


def test_a_document_of_many_plain_values_is_bounded_too() -> None:
    text = HEAD + "  command:\n    args: [" + ", ".join(["x"] * 200) + "]\n"
    error = only_error(text, YamlLimits(max_values=100))
    assert error == "t.yaml:7:11: more than 100 values in one document (the limit for one document)"


def test_the_values_of_all_documents_of_a_file_are_bounded_together() -> None:
    # Each document under the per-document bound (457 values of 500), but together far more
    # than the text: the file's budget (max_values + 2 per character) runs out.
    small = "a: &a [x,x,x,x]\nb: &b [*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b]\nd: [*c,*c,*c,*c]\n"
    limits = YamlLimits(max_values=500, max_errors=1000)
    first = parse_text(small, "t.yaml", limits=limits).errors[0].message
    assert first.startswith("apiVersion: required field is missing")
    text = "---\n".join([small] * 50)
    budget = limits.file_values(len(text))
    errors = parse_text(text, "t.yaml", limits=limits).errors
    # The document that does not fit in what is left (budget % 457 values) is an error, and
    # the reading stops at the next one.
    assert [e.message for e in errors if "expand" in e.message] == [
        f"YAML aliases expand this value to more than {budget % 457} values "
        f"(what is left of the limit for this file, {budget} values: an alias bomb?)"
    ]
    assert errors[-1].message == (
        f"the documents of this file count more than {budget} values together (the limit for "
        "a file of this size: an alias bomb?)"
    )


def test_nesting_is_bounded_with_a_place() -> None:
    text = "spec: " + "[" * 150 + "]" * 150 + "\n"
    error = only_error(text)
    assert error == "t.yaml:1:56: nested more than 100 levels deep (the limit)"


def test_libyamls_own_nesting_limit_is_a_syntax_error() -> None:
    error = only_error("spec: " + "[" * 3000 + "]" * 3000 + "\n")
    assert error.startswith("t.yaml:1:")
    assert "YAML syntax error" in error


def test_documents_per_file_are_bounded() -> None:
    parsed = parse_text("---\n" * 50, "t.yaml", limits=YamlLimits(max_documents=10))
    (error,) = parsed.errors
    assert str(error) == "t.yaml:12:1: more than 10 YAML documents in one file (the limit)"


def test_errors_per_file_are_bounded() -> None:
    text = HEAD + "  command:\n    args: [" + ", ".join(["1"] * 100) + "]\n"
    errors = parse_text(text, "t.yaml", limits=YamlLimits(max_errors=5)).errors
    assert len(errors) == 6
    assert all("a string, not the number 1: quote it" in e.message for e in errors[:5])
    assert errors[5].message == "more problems in this file; only the first 5 are reported"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2001-13-01", "t.yaml:1:4: invalid !!timestamp value: month must be in 1..12"),
        ("1" * 5000, "t.yaml:1:4: number longer than 100 characters"),
        ("1:2" + ":3" * 200, "t.yaml:1:4: number longer than 100 characters"),  # base 60
        ("!!int abc", "t.yaml:1:4: invalid !!int value: invalid literal for int() with base 10:"),
        ("!!python/object:os.system {}", "t.yaml:1:4: unsupported YAML tag '!!python/object"),
        ("!!python/name:os.system ''", "t.yaml:1:4: unsupported YAML tag '!!python/name:os"),
        ("!custom x", "t.yaml:1:4: unsupported YAML tag '!custom'"),
    ],
)
def test_scalars_that_cannot_be_built_are_errors_not_crashes(value: str, message: str) -> None:
    assert only_error(f"a: {value}\n").startswith(message)


def test_a_bad_scalar_inside_a_document_of_another_group_is_ignored_with_it() -> None:
    text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {at: 2001-13-01}\n" + mapping_bomb()
    parsed = parse_text(text, "t.yaml")
    assert (parsed.errors, parsed.ignored) == ([], 1)


def test_control_characters_are_errors_at_their_place() -> None:
    assert only_error("a: 1\nb: x\x00y\n") == (
        "t.yaml:2:5: unacceptable character #x0000: control characters are not allowed"
    )


def test_a_byte_order_mark_is_accepted() -> None:
    text = "\ufeff" + HEAD + '  command: {args: ["true"]}\n'
    assert parse_text(text, "t.yaml").errors == []


SHADOW = "root:$6$Xk2b9Qw1$4Jp0bq1t2y3u4i5o6p7a8s9d0f1g2h3j4k5l6z7x8c9v0b1n2m3:19000:0:99999:7:::"


def test_an_unknown_field_is_quoted_as_a_short_single_line_excerpt() -> None:
    errors = [str(e) for e in parse_text(f"{SHADOW}\n", "t.yaml").errors]
    assert f"t.yaml:1:1: {SHADOW[:40]}...: unknown field" in errors
    assert all(SHADOW not in e for e in errors)


def test_a_100_kb_key_is_not_echoed() -> None:
    key = "k" * 100_000
    text = HEAD + f'  ? "{key}\\nline two"\n  : 1\n  command: {{args: ["true"]}}\n'
    (error,) = parse_text(text, "t.yaml").errors
    assert str(error) == f"t.yaml:6:5: spec.{'k' * 40}...: unknown field"


def test_control_characters_in_keys_and_values_are_escaped() -> None:
    text = HEAD + '  "evil\\nkey\\u202e": 1\n  command: {args: ["true"]}\n'
    (error,) = parse_text(text, "t.yaml").errors
    assert str(error) == "t.yaml:6:3: spec.evil\\nkey\\u202e: unknown field"
    bad_name = HEAD.replace("name: bomb", 'name: "x\\r\\nlevel=error msg=forged"')
    (error,) = parse_text(bad_name + '  command: {args: ["true"]}\n', "t.yaml").errors
    assert str(error).startswith(
        "t.yaml:3:12: metadata.name: 'x\\r\\nlevel=error msg=forged' is not a DNS-1123 label"
    )
    assert error.key is None  # an invalid name is no task key


def test_messages_of_the_model_are_bounded() -> None:
    # A bad environment variable name (up to 256 characters: its bound) is an error at its
    # key, which the place quotes as an excerpt, so that the reason is kept.
    text = HEAD + '  command: {args: ["true"], env: {"1' + "x" * 250 + '": v}}\n'
    error = only_error(text)
    assert error == (
        "t.yaml:6:35: spec.command.env.1" + "x" * 39 + "...: not a valid environment variable"
        " name: letters, digits and '_', not starting with a digit"
    )
    # A longer one is refused by its bound, with a short excerpt and the reason kept.
    error = only_error(text.replace("x" * 250, "x" * 900))
    assert error == (
        "t.yaml:6:35: spec.command.env.1" + "x" * 39 + "...: longer than 256 characters"
        " (the limit for an environment variable name)"
    )


def test_duplicate_keys_inside_an_alias_are_reported_once() -> None:
    text = "a: &a {k: 1, k: 2}\nb: [*a, *a, *a]\n"
    errors = [str(e) for e in parse_text(text, "t.yaml").errors]
    assert errors == ["t.yaml:1:14: a.k: duplicate key"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("a\nb", "a\\nb"),
        ("\x00\x1b[31m", "\\x00\\x1b[31m"),
        ("\u202etxt", "\\u202etxt"),
        ("\u2028", "\\u2028"),
        ("x" * 50, "x" * 40 + "..."),
        ("\n" * 50, "\\n" * 20 + "..."),
    ],
)
def test_excerpt(text: str, expected: str) -> None:
    assert excerpt(text) == expected


def dense(size: int) -> str:
    """A CronTask whose args are ``size`` bytes of one-character values."""
    head = HEAD + "  command:\n    args: ["
    return head + "1," * ((size - len(head)) // 2) + "1]\n"


def test_a_long_text_is_counted_before_it_is_composed() -> None:
    # A megabyte of tiny values: PyYAML's composer alone would keep 150 MB of nodes. The
    # events are counted first, and the value past the limit is the error.
    text = dense(1024 * 1024)
    started = time.process_time()
    error = only_error(text)
    assert time.process_time() - started < 1.0  # some 10 ms; generous
    assert error == (
        "t.yaml:7:19978: more than 10000 values in one document (the limit for one document)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("---\n" * 30_000, "t.yaml:10001:1: more than 10000 YAML documents in one file"),
        ("a: " + "[" * 200 + "]" * 200 + "\n" + "#" * 70_000, "t.yaml:1:103: nested more than"),
    ],
)
def test_the_count_of_a_long_text_bounds_documents_and_depth(text: str, message: str) -> None:
    assert len(text) > PRESCAN_LENGTH
    assert only_error(text).startswith(message)


def test_a_long_valid_file_is_read_whole() -> None:
    task = (
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {{name: t{n}}}\n"
        'spec: {{schedule: "@daily", command: {{args: ["echo", "{n}"]}}}}\n'
    )
    text = "---\n".join(task.format(n=n) for n in range(1000))
    assert len(text) > PRESCAN_LENGTH
    parsed = parse_text(text, "t.yaml")
    assert parsed.errors == []
    assert len(parsed.definitions) == 1000


def test_a_syntax_error_in_a_long_text_is_reported_with_what_comes_before() -> None:
    text = (HEAD + "  bogus: 1\n" + "#" * 70_000 + "\n---\n") + "a: [\n"
    errors = [str(e) for e in parse_text(text, "t.yaml").errors]
    assert errors[0].startswith("t.yaml:6:3: spec.bogus: unknown field")
    assert "YAML syntax error" in errors[-1]


def test_a_document_that_cannot_be_built_still_names_its_task() -> None:
    # The key is what flags the task (running on its last good definition) in the API.
    text = sequence_bomb().replace("{name: bomb}", "{name: victim, namespace: ops}")
    (error,) = parse_text(text, "t.yaml").errors
    assert error.key == "ops/victim"
    forged = sequence_bomb().replace("{name: bomb}", '{name: "Not A Label"}')
    (error,) = parse_text(forged, "t.yaml").errors
    assert error.key is None
