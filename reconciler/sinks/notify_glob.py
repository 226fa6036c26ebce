"""A route's ``match.name``: a glob as fnmatch reads it (``*``, ``?``, ``[set]``, ``[!set]``),
checked for what it cannot mean to the one who wrote it: a set fnmatch reads otherwise than a
shell does, and a glob that no task's name can match."""

from __future__ import annotations

import fnmatch
import re
from typing import Final

from reconciler.core.runs import DNS1123_LABEL

# What a task's name is made of (metadata.name is a DNS-1123 label: no '.', unlike a subdomain).
NAME_CHARACTERS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
NAME_MOST: Final = 63  # a DNS-1123 label's length


def misread(glob: str) -> str | None:
    """Why a set of ``glob`` means to fnmatch what it does not to a shell or a regular
    expression, or None: ``[^0-9]`` is "``^`` or a digit" (a glob negates with ``!``), and a
    ``\\`` in a set is itself (``[\\d]`` is "``\\`` or ``d``"). Such a route would hear other
    tasks than the ones meant, and nothing would say so."""
    i = 0
    while i < len(glob):
        end = set_end(glob, i) if glob[i] == "[" else None
        if end is None:
            i += 1
            continue
        taken, inside = glob[i : end + 1], glob[i + 1 : end]
        if inside.startswith("^"):
            rest = inside[1:]
            return (
                f"{taken} is read as '^'{f' or one of {rest}' if rest else ''} (a glob negates "
                f"a set with '!', not '^'): write [!{rest or '...'}]"
            )
        if "\\" in inside:
            return (
                f"fnmatch has no escapes in a set: {taken} takes '\\' as itself, one of the set: "
                "write the characters themselves, as [0-9] for a digit"
            )
        i = end + 1
    return None


def unmatchable(glob: str) -> str | None:
    """Why no task's name can match ``glob``, or None: a ``/`` (a ``namespace/name`` key), a
    character no name holds, or a set that takes none. Character by character only: ``-*``
    still passes, and matches no label."""
    if "/" in glob:
        namespace, _, name = glob.partition("/")
        if re.match(DNS1123_LABEL, namespace):
            return f"a task's name holds no '/': write namespace: {namespace} and name: {name}"
        if namespace in ("", "*"):
            return (
                f"a task's name holds no '/': write name: {name} and no namespace to match "
                f"{name} in every namespace"
            )
        return "a task's name holds no '/' (its namespace is matched apart, by namespace:)"
    i = 0
    shortest = 0  # characters a matching name has at least: each but a '*' takes one
    while i < len(glob):
        end = set_end(glob, i) if glob[i] == "[" else None
        if end is not None:
            taken = glob[i : end + 1]
            if not any(fnmatch.fnmatchcase(c, taken) for c in NAME_CHARACTERS):
                return f"{taken} matches no character of a task name"
            i, shortest = end + 1, shortest + 1
            continue
        if glob[i] not in NAME_CHARACTERS and glob[i] not in "*?":
            return (
                f"{glob[i]!r} is in no task name (lower-case letters, digits and '-'; a glob "
                "adds *, ? and [...]): write '-' or ? in its place"
            )
        i, shortest = i + 1, shortest + (glob[i] != "*")
    if shortest > NAME_MOST:
        return (
            f"a name it matches has at least {shortest} characters, and a task's name has at "
            f"most {NAME_MOST}"
        )
    return None


def outside_sets(glob: str) -> str:
    """``glob`` without its ``[set]``s, each ended where fnmatch ends it (:func:`set_end`):
    a regular expression's ``\\[[^]]*\\]`` ends ``[!]A]x`` at its first ``]``, leaving
    ``A]x`` outside, where fnmatch reads "not ``]`` or ``A``, then ``x``"."""
    kept: list[str] = []
    i = 0
    while i < len(glob):
        end = set_end(glob, i) if glob[i] == "[" else None
        if end is None:
            kept.append(glob[i])
            i += 1
        else:
            i = end + 1
    return "".join(kept)


def set_end(glob: str, start: int) -> int | None:
    """The index of the ``]`` that closes the set opening at ``start``, as fnmatch reads it
    (a ``]`` first, or after ``!``, is one of the set), or None: an unclosed ``[`` is itself."""
    j = start + 1
    if j < len(glob) and glob[j] == "!":
        j += 1
    if j < len(glob) and glob[j] == "]":
        j += 1
    end = glob.find("]", j)
    return end if end >= 0 else None
