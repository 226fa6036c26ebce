"""Table tests for the pure planner."""

from __future__ import annotations

import pytest

from reconciler.core.desired import Definition
from reconciler.core.plan import FieldChange, Operation, diff_documents, plan
from tests.helpers import definition

A = definition("a")
A2 = definition("a", schedule="*/5 * * * *")
B = definition("b")
C = definition("c")


def by_key(*defs: Definition) -> dict[str, Definition]:
    return {d.key: d for d in defs}


@pytest.mark.parametrize(
    ("desired", "actual", "expected", "unchanged"),
    [
        ([], [], [], 0),
        ([A], [], [("add", "default/a")], 0),
        ([A, B], [A, B], [], 2),
        ([A2, B], [A, B], [("update", "default/a")], 1),
        ([B], [A, B], [("remove", "default/a")], 1),
        (
            [A2, C],
            [A, B],
            [("update", "default/a"), ("add", "default/c"), ("remove", "default/b")],
            0,
        ),
    ],
)
def test_plan_table(
    desired: list[Definition],
    actual: list[Definition],
    expected: list[tuple[str, str]],
    unchanged: int,
) -> None:
    result = plan(by_key(*desired), by_key(*actual))
    assert sorted((str(s.operation), s.key) for s in result.steps) == sorted(expected)
    assert result.unchanged == unchanged


def test_plan_is_idempotent_once_applied() -> None:
    desired = by_key(A2, C)
    first = plan(desired, by_key(A, B))
    assert not first.empty
    assert plan(desired, desired).empty


def test_reformatting_a_spec_does_not_update() -> None:
    # Defaults written out explicitly hash the same as defaults left out.
    explicit = definition("a", suspend=False, timeZone="UTC", concurrencyPolicy="Forbid")
    assert plan(by_key(explicit), by_key(A)).empty


def test_location_change_alone_is_not_an_update() -> None:
    moved = definition("a", path="elsewhere.yaml", line=9)
    assert plan(by_key(moved), by_key(A)).empty


def test_keys_limit_the_comparison_to_what_changed() -> None:
    # B differs too, but only "a" was marked dirty: the pass looks at nothing else.
    result = plan(by_key(A2, definition("b", suspend=True)), by_key(A, B), keys=["default/a"])
    assert [(s.operation, s.key) for s in result.steps] == [(Operation.UPDATE, "default/a")]


def test_empty_desired_holds_removals() -> None:
    result = plan({}, by_key(A, B))
    assert result.empty
    assert result.held_removals == ("default/a", "default/b")
    assert "held" in result.summary()


def test_empty_desired_removes_when_allowed() -> None:
    result = plan({}, by_key(A, B), allow_empty=True)
    assert [s.operation for s in result.steps] == [Operation.REMOVE, Operation.REMOVE]


def test_partial_removal_is_not_held() -> None:
    assert [s.key for s in plan(by_key(A), by_key(A, B)).of(Operation.REMOVE)] == ["default/b"]


def test_field_changes_name_each_field() -> None:
    (step,) = plan(by_key(definition("a", schedule="0 3 * * *", suspend=True)), by_key(A)).steps
    assert [str(c) for c in step.field_changes()] == [
        "~ spec.schedule: '* * * * *' -> '0 3 * * *'",
        "~ spec.suspend: False -> True",
    ]


def test_diff_documents_added_and_removed_fields() -> None:
    old = {"spec": {"command": {"args": ["a"]}, "timeoutSeconds": 5}}
    new = {"spec": {"command": {"args": ["a", "b"]}, "retry": {"limit": 1}}}
    assert diff_documents(old, new) == [
        FieldChange("spec.command.args", ["a"], ["a", "b"]),
        FieldChange("spec.retry", None, {"limit": 1}),
        FieldChange("spec.timeoutSeconds", 5, None),
    ]
