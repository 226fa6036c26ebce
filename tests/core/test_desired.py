"""Assembling desired state: conflicts are deterministic and reported on both sides."""

from __future__ import annotations

import itertools

import pytest
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


@given(
    edits=st.lists(
        st.tuples(st.integers(0, 199), st.sampled_from(["x.yaml", "y.yaml", None])),
        min_size=1,
        max_size=400,
    )
)
@pytest.mark.slow
def test_a_long_run_of_edits_agrees_with_assembling_everything(
    edits: list[tuple[int, str | None]],
) -> None:
    # Edits pile up in a layer over the last full mapping and are folded in now and then:
    # after every edit the mapping must read as a plain one, whichever form it has.
    where: dict[str, str] = {f"t{i}": "x.yaml" for i in range(0, 200, 2)}
    state = assemble([definition(name, path=path) for name, path in where.items()])
    for number, path in edits:
        name = f"t{number}"
        if path is None:
            where.pop(name, None)
        else:
            where[name] = path
        new = [definition(name, path=path)] if path is not None else []
        state = reassemble(state, {f"default/{name}"}, new)
        expected = assemble([definition(n, path=p) for n, p in where.items()])
        assert dict(state.tasks) == dict(expected.tasks)
        assert len(state.tasks) == len(expected.tasks)
        assert set(state.tasks) == set(expected.tasks)
        assert (f"default/{name}" in state.tasks) == (path is not None)


def test_removing_every_task_one_edit_at_a_time_leaves_none() -> None:
    # More changes than a layer holds: removals are folded into a full mapping on the way.
    names = [f"t{i}" for i in range(300)]
    state = assemble([definition(name) for name in names])
    for count, name in enumerate(names, start=1):
        state = reassemble(state, {f"default/{name}"}, [])
        assert len(state.tasks) == len(names) - count
        assert set(state.tasks) == {f"default/{n}" for n in names[count:]}
        assert f"default/{name}" not in state.tasks


def test_a_pass_that_changes_nothing_keeps_the_same_mapping() -> None:
    previous = assemble([definition("a"), definition("b")])
    assert reassemble(previous, set(), []).tasks is previous.tasks


# -- errors: kept in order pass after pass, without sorting them all again -------------------

_POOL = [
    DefinitionError(Location("file", path, line, 1), message)
    for path in ("a.yaml", "b.yaml", "c.yaml")
    for line in (1, 2, 10)
    for message in ("bad", "worse")
]
_error_picks = st.lists(st.integers(0, len(_POOL) - 1), max_size=40)


@given(before=_error_picks, after=_error_picks)
def test_errors_after_a_pass_are_sorted_whatever_the_previous_pass_held(
    before: list[int], after: list[int]
) -> None:
    # The same objects from pass to pass (as a source keeps those of files it did not read
    # again), an object now and then twice: the order is always that of a full sort.
    previous = assemble([], [_POOL[i] for i in before])
    errors = [_POOL[i] for i in after]
    state = reassemble(previous, set(), [], errors)
    expected = sorted(errors, key=lambda e: (e.location, e.message))
    assert list(state.errors) == expected


def test_errors_unchanged_are_the_previous_tuple_itself() -> None:
    # What the consumers of a pass (its log, notifications, metrics) compare by identity, so
    # that an edit among 100 000 errors formats none of them again.
    errors = [_POOL[5], _POOL[0], _POOL[9]]
    previous = assemble([definition("a")], errors)
    again = reassemble(previous, {"default/a"}, [definition("a", schedule="0 * * * *")], errors)
    assert again.errors is previous.errors
    moved = reassemble(previous, set(), [], [_POOL[9], _POOL[0], _POOL[5]])
    assert moved.errors == previous.errors


def test_a_few_new_errors_among_many_take_their_places() -> None:
    many = [
        DefinitionError(Location("file", f"f{i:04}.yaml", 1, 1), "bad") for i in range(0, 400, 2)
    ]
    previous = assemble([], many)
    new = [DefinitionError(Location("file", f"f{i:04}.yaml", 1, 1), "bad") for i in (1, 201, 999)]
    state = reassemble(previous, set(), [], [*many[1:], *new])
    assert [e.location.path for e in state.errors] == sorted(
        e.location.path for e in [*many[1:], *new]
    )
