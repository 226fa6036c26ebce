"""Which live replica owns a task: rendezvous (highest-random-weight) hashing. Pure.

Every replica computes the same owner from the same member list, with no coordination: the
owner of a key is the member with the highest weight ``hash(member, key)`` (ties, which a 64-bit
hash makes vanishingly rare, go to the greater member id). When a member joins, it takes from
each other member only the keys it now outweighs them on (about 1/N of all keys); when one
leaves, only its keys move, each to the member that weighed next. No key ever moves between two
members that both stay (Thaler and Ravishankar, 1998).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


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


class Assignment:
    """Ownership for one member list, seen from one member (``me``)."""

    def __init__(self, members: Iterable[str], me: str) -> None:
        self.members = tuple(sorted(set(members)))
        self.me = me
        self._owners: dict[str, str | None] = {}

    def owner(self, key: str) -> str | None:
        found = self._owners.get(key, "")
        if found == "":
            found = self._owners[key] = owner(key, self.members)
        return found

    def mine(self, key: str) -> bool:
        return self.owner(key) == self.me
