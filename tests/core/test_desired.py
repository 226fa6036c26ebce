"""Assembling desired state: conflicts are deterministic and reported on both sides."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from reconciler.core.desired import Definition, DefinitionError, Location, assemble, reassemble
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


# -- reassemble: the incremental path must agree with assembling everything -----------------

_names = st.sampled_from(["a", "b", "c", "d"])
_places = st.tuples(st.sampled_from(["x.yaml", "y.yaml", "z.yaml"]), st.integers(1, 3))
_defs = st.lists(st.tuples(_names, _places), max_size=8)


@given(before=_defs, after=_defs)
def test_reassemble_of_the_changed_keys_equals_assemble_of_everything(
    before: list[tuple[str, tuple[str, int]]], after: list[tuple[str, tuple[str, int]]]
) -> None:
    def build(items: list[tuple[str, tuple[str, int]]]) -> list[Definition]:
        return [definition(name, path=path, line=line) for name, (path, line) in items]

    old, new = build(before), build(after)
    # What a source reports: every key whose definitions differ (by location, the only thing
    # that varies here), in either direction.
    changed = {d.key for d in old} ^ {d.key for d in new} | {
        key
        for key in {d.key for d in old} & {d.key for d in new}
        if sorted(d.location for d in old if d.key == key)
        != sorted(d.location for d in new if d.key == key)
    }
    error = DefinitionError(Location("file", "e.yaml", 1, 1), "bad")
    incremental = reassemble(assemble(old), changed, [d for d in new if d.key in changed], [error])
    assert incremental == assemble(new, [error])


def test_reassemble_leaves_the_previous_state_alone() -> None:
    previous = assemble([definition("a"), definition("b")])
    reassemble(previous, {"default/a"}, [])
    assert set(previous.tasks) == {"default/a", "default/b"}
