"""Rendezvous hashing: exactly one owner per key for any member list, the same on every
replica, and a membership change moves no key between two members that both stay."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from reconciler.core.assignment import Assignment, owner

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
