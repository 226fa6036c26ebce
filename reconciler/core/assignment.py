"""Which live replica owns a task: rendezvous (highest-random-weight) hashing. Pure.

Every replica computes the same owner from the same member list, with no coordination: the
owner of a key is the member with the highest weight ``hash(member, key)`` (ties, which a 64-bit
hash makes vanishingly rare, go to the greater member id). When a member joins, it takes from
each other member only the keys it now outweighs them on (about 1/N of all keys); when one
leaves, only its keys move, each to the member that weighed next. No key ever moves between two
members that both stay (Thaler and Ravishankar, 1998).

Replicas that read different definitions (a volume mounted on one only, a git fetch behind)
do not all declare every key: a key goes to the heaviest of the members that declare it
(``declared``), since a member that does not would never schedule it. A key no member declares
has no owner. The hash is the same, so every replica that is given the same members and the
same ``declared`` computes the same owner, and a key declared by every member keeps the owner
it has without ``declared``.

Which members tasks are assigned over (:func:`assigned_over`) depends on whether the renewal's
list holds every live member or was *cut* (more are live than a renewal reads, a flood another
writer of the records can make): which ones a cut list holds is swayed by that writer, so two
replicas may read different lists. Each renewal therefore ranks right after the replica itself
the members it *knows* (those of its last whole list still live): they number fewer than a
list holds, so a known member missing from a cut list is not live. On a cut list, tasks are
assigned over the known members that are live and not draining: a replica that dies or stops
hands its tasks over as always, and a member not known (one of that writer's records, or a
replica that joins meanwhile) is assigned nothing until the list is whole again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping


def weight(member: str, key: str) -> int:
    digest = hashlib.blake2b(f"{member}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(key: str, members: Iterable[str]) -> str | None:
    """The member that owns ``key``; None when there are no members."""
    best: tuple[int, str] | None = None
    for member in members:
        candidate = (weight(member, key), member)
        if best is None or candidate > best:
            best = candidate
    return best[1] if best else None


def assigned_over(
    live: frozenset[str], draining: frozenset[str], *, cut: bool, known: frozenset[str]
) -> tuple[tuple[str, ...], frozenset[str]]:
    """The members tasks are assigned over (by id), and those known from now on, given the live
    members a renewal read (``draining`` among them) and whether its list was ``cut``."""
    if not cut:
        return tuple(sorted(live - draining)), live
    known = known & live  # a known member missing from a cut list is gone
    return tuple(sorted(known - draining)), known


def declaring(
    views: Iterable[tuple[str, Mapping[str, str | None]]], unread: Collection[str] = ()
) -> dict[str, frozenset[str]]:
    """The ``declared`` of an :class:`Assignment`, from the keys whose views differ (each with
    its spec hash as each member read it, None where a member does not declare it). Members
    in ``unread`` have published no view yet: they count as declaring every key."""
    return {
        key: frozenset(m for m, spec in seen.items() if spec is not None) | frozenset(unread)
        for key, seen in views
    }


class Assignment:
    """Ownership for one member list, seen from one member (``me``).

    ``declared`` maps a key to the members that declare it; a key not in it is declared by
    every member. Members in it that are not in ``members`` are no owners."""

    def __init__(
        self,
        members: Iterable[str],
        me: str,
        declared: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        self.members = tuple(sorted(set(members)))
        self.me = me
        listed = frozenset(self.members)
        declaring = {key: frozenset(those) & listed for key, those in (declared or {}).items()}
        # Only the keys that some member does not declare: two assignments that give every
        # key the same owner then compare the same (``same``).
        self.declared = {key: those for key, those in declaring.items() if those != listed}
        self._owners: dict[str, str | None] = {}

    def owner(self, key: str) -> str | None:
        found = self._owners.get(key, "")
        if found == "":
            found = self._owners[key] = owner(key, self.declared.get(key, self.members))
        return found

    def mine(self, key: str) -> bool:
        return self.owner(key) == self.me

    def same(self, other: Assignment | None) -> bool:
        """Whether ``other`` gives every key the same owner (it has the same inputs)."""
        return other is not None and (other.members, other.declared) == (
            self.members,
            self.declared,
        )
