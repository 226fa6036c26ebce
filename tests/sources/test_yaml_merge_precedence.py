"""Merge keys (``<<``) in a task's file take the spec's precedence whatever PyYAML is
installed: the mapping's own keys first, then the first mapping listed. PyYAML 6.0.4 lets the
last mapping listed win for keys longer than one character (yaml/pyyaml#953)."""

from __future__ import annotations

import pytest
import yaml

from reconciler.sources.documents import parse_text
from reconciler.sources.yamlmerge import MergingConstructor

HEAD = "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: m}\n"


def _schedule(text: str) -> str:
    parsed = parse_text(text, "t.yaml")
    assert not parsed.errors, parsed.errors
    (definition,) = parsed.definitions
    return definition.task.spec.schedule


def test_the_first_mapping_listed_wins() -> None:
    text = HEAD + "spec:\n  <<: [{schedule: '@daily'}, {schedule: '@hourly'}]\n"
    text += "  command: {args: ['true']}\n"
    assert _schedule(text) == "@daily"


def test_the_mappings_own_key_wins_over_every_merged_one() -> None:
    text = HEAD + "spec:\n  <<: [{schedule: '@daily'}, {schedule: '@hourly'}]\n"
    text += "  schedule: '@weekly'\n  command: {args: ['true']}\n"
    assert _schedule(text) == "@weekly"


@pytest.mark.parametrize(
    ("anchors", "zone"),
    [
        ("a: &a {schedule: d, tz: A}\nb: &b {schedule: h, tz: B}\n", "A"),
        ("a: &a {schedule: d}\nb: &b {schedule: h, tz: B}\n", "B"),  # only b has it
    ],
)
def test_each_key_comes_from_the_first_mapping_that_has_it(anchors: str, zone: str) -> None:
    # *a listed again last must not make a's keys lose to b's.
    node = yaml.compose(anchors + "c: {<<: [*a, *b, *a]}\n", Loader=yaml.SafeLoader)
    data = MergingConstructor().construct_document(node)
    assert (data["c"]["schedule"], data["c"]["tz"]) == ("d", zone)


def test_a_merge_of_no_mapping_is_still_refused_at_its_place() -> None:
    text = HEAD + "spec:\n  <<: [{schedule: '@daily'}, 3]\n  command: {args: ['true']}\n"
    (error,) = parse_text(text, "t.yaml").errors
    assert "expected a mapping for merging" in error.message
    assert error.location.line == 5
