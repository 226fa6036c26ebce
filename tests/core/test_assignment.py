"""Rendezvous hashing: exactly one owner per key for any member list, the same on every
replica, and a membership change moves no key between two members that both stay."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from hypothesis import given
from hypothesis import strategies as st

from reconciler.core.assignment import Assignment, declaring, owner

members = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=8, unique=True)
keys = st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=60, unique=True)


@given(members, keys)
def test_exactly_one_owner_and_the_same_on_every_replica(
    names: list[str], tasks: list[str]
) -> None:
    views = [Assignment(names, me) for me in names]
    for key in tasks:
        owners = {view.owner(key) for view in views}
        assert len(owners) == 1
        (found,) = owners
        assert found in names
        assert sum(view.mine(key) for view in views) == 1
        assert owner(key, reversed(names)) == found  # the order of the list does not matter


@given(members, st.text(min_size=1, max_size=12), keys)
def test_a_join_moves_keys_only_to_the_newcomer(
    names: list[str], newcomer: str, tasks: list[str]
) -> None:
    if newcomer in names:
        return
    for key in tasks:
        before, after = owner(key, names), owner(key, [*names, newcomer])
        assert after in (before, newcomer)


@given(members, keys)
def test_a_leave_moves_only_the_leavers_keys(names: list[str], tasks: list[str]) -> None:
    if len(names) < 2:
        return
    leaver, stay = names[0], names[1:]
    for key in tasks:
        before = owner(key, names)
        if before != leaver:
            assert owner(key, stay) == before


def test_keys_spread_evenly() -> None:
    replicas = ["crontask-0", "crontask-1", "crontask-2"]
    counts = Counter(owner(f"ns/task-{i}", replicas) for i in range(30_000))
    assert set(counts) == set(replicas)
    # 10 000 expected each; a fair hash stays within a few standard deviations (~82).
    assert max(counts.values()) / min(counts.values()) < 1.05
    assert owner("ns/task", []) is None


declarers = st.dictionaries(
    st.text(min_size=1, max_size=30), st.sets(st.text(min_size=1, max_size=12)), max_size=40
)


@given(members, keys, declarers)
def test_a_key_goes_to_a_member_that_declares_it_and_the_same_on_every_replica(
    names: list[str], tasks: list[str], declared: dict[str, set[str]]
) -> None:
    views = [Assignment(names, me, declared) for me in names]
    for key in [*tasks, *declared]:
        owners = {view.owner(key) for view in views}
        assert len(owners) == 1
        (found,) = owners
        if key not in declared:  # declared by every member
            assert found == owner(key, names)
        elif declared[key] & set(names):
            assert found == owner(key, declared[key] & set(names))
        else:
            assert found is None  # nobody declares it: no owner
            assert not any(view.mine(key) for view in views)


def test_which_members_declare_a_key() -> None:
    names = ["crontask-0", "crontask-1", "crontask-2"]
    both = next(k for k in (f"ns/t{i}" for i in range(100)) if owner(k, names) == "crontask-0")
    some: dict[str, Collection[str]] = {both: {"crontask-1", "crontask-2", "gone"}}
    assignment = Assignment(names, "crontask-1", {**some, "ns/nobody": {"gone"}, "ns/all": names})
    assert assignment.owner(both) in ("crontask-1", "crontask-2")  # not crontask-0's
    assert assignment.owner("ns/nobody") is None  # only a member not in the list declares it
    assert assignment.owner("ns/all") == owner("ns/all", names)
    # A key every member declares is as good as one not listed: the same owners.
    assert assignment.same(Assignment(reversed(names), "crontask-1", {**some, "ns/nobody": ()}))
    assert not assignment.same(Assignment(names, "crontask-1"))


def test_who_declares_a_key_from_the_views_that_differ() -> None:
    views: list[tuple[str, dict[str, str | None]]] = [
        ("ns/new", {"a": "h1", "b": None}),  # added on a only (b's git fetch is behind)
        ("ns/edited", {"a": "h1", "b": "h2"}),  # declared by both, differently
        ("ns/gone", {"a": None, "b": None}),  # declared by neither any more
    ]
    assert declaring(views) == {
        "ns/new": {"a"},
        "ns/edited": {"a", "b"},
        "ns/gone": frozenset(),
    }
    # c has not read its sources yet (no view): it may declare anything.
    assert declaring(views, unread={"c"})["ns/new"] == {"a", "c"}
    assert declaring(views, unread={"c"})["ns/gone"] == {"c"}
