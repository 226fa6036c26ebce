"""Table tests for the pure planner."""

from __future__ import annotations

import dataclasses

import pytest

from reconciler.core.desired import Definition, Location, SourceKind
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


def from_cluster(name: str) -> Definition:
    """A task read from a CronTask object."""
    return dataclasses.replace(
        definition(name), location=Location(SourceKind.KUBERNETES, f"default/{name}")
    )


K, L = from_cluster("k"), from_cluster("l")
CLUSTER = {SourceKind.KUBERNETES}


@pytest.mark.parametrize(
    ("actual", "keys", "removed", "held"),
    [
        # The last CronTasks deleted (kubectl delete ct --all): a listed cluster's state.
        ([K, L], None, ["default/k", "default/l"], []),
        ([K], ["default/k"], ["default/k"], []),  # a pass of the DELETED event's key
        # A folder gone at the same time: its tasks are held, the cluster's are not.
        ([A, K], None, ["default/k"], ["default/a"]),
        ([A, K], ["default/a", "default/k"], ["default/k"], ["default/a"]),
        ([A, B], None, [], ["default/a", "default/b"]),
    ],
)
def test_an_authoritative_source_empty_removes_its_tasks(
    actual: list[Definition], keys: list[str] | None, removed: list[str], held: list[str]
) -> None:
    result = plan({}, by_key(*actual), keys=keys, authoritative=CLUSTER)
    assert [s.key for s in result.of(Operation.REMOVE)] == removed
    assert list(result.held_removals) == held


def test_without_authoritative_sources_every_removal_is_held() -> None:
    assert plan({}, by_key(A, K)).held_removals == ("default/a", "default/k")
    assert [s.key for s in plan({}, by_key(A, K), allow_empty=True).steps] == [
        "default/a",
        "default/k",
    ]


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
