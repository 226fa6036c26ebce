"""Assembling desired state: conflicts are deterministic and reported on both sides."""

from __future__ import annotations

import itertools

from reconciler.core.desired import DefinitionError, Location, assemble
from tests.helpers import definition


def test_conflict_first_location_wins_in_any_input_order() -> None:
    first = definition("a", path="a.yaml", line=3)
    second = definition("a", path="b.yaml", line=1, schedule="0 * * * *")
    third = definition("a", path="a.yaml", line=10, suspend=True)
    for order in itertools.permutations([first, second, third]):
        state = assemble(order)
        assert state.tasks["default/a"] is first
        (conflict,) = state.conflicts
        assert conflict.winner == first.location
        assert conflict.losers == (third.location, second.location)
        assert str(conflict) == (
            "default/a is defined more than once: using a.yaml:3:1, "
            "ignoring a.yaml:10:1, b.yaml:1:1"
        )


def test_same_name_in_other_namespace_is_no_conflict() -> None:
    state = assemble([definition("a"), definition("a", namespace="ops")])
    assert set(state.tasks) == {"default/a", "ops/a"}
    assert not state.conflicts


def test_problems_are_sorted_errors_then_conflicts() -> None:
    errors = [
        DefinitionError(Location("file", "z.yaml", 2, 1), "bad"),
        DefinitionError(Location("file", "a.yaml", 7, 3), "worse"),
    ]
    state = assemble([definition("a", path="x"), definition("a", path="y")], errors)
    assert state.problems == [
        "a.yaml:7:3: worse",
        "z.yaml:2:1: bad",
        "default/a is defined more than once: using x:1:1, ignoring y:1:1",
    ]
