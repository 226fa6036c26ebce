"""Which root of the directory source (``files``) a path is of, when the roots nest.

A folder may be given under another one (``crontask run tasks tasks/shared``), maybe through a
link that the walk of the outer folder does not enter (``tasks/shared -> ../shared``). A path
under both is the inner root's: it is the root the user named for it, and only its walk reads
it. So the inner root decides where the links of its files may lead, and whether its files are
held when it suddenly yields nothing; the outer root does not count them among its own tasks
(each file counted once) nor report the link as "not entered". The order the roots are given
in changes none of it.

Roots and paths are compared as spelled, never resolved (see ``files``): a path found under a
root is spelled with that root, so the closest root holding it is the longest one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reconciler.sources.rootstate import is_within


def closest_root(roots: Sequence[Path], path: Path) -> Path | None:
    """The longest of ``roots`` that ``path`` is or lies under; None if it is under none."""
    holding = [root for root in roots if is_within(path, root)]
    return max(holding, key=lambda root: len(root.parts), default=None)


def inner_roots(roots: Sequence[Path], root: Path) -> list[Path]:
    """The other ``roots`` given under ``root``: its files under them are theirs."""
    return [other for other in roots if other != root and is_within(other, root)]


def not_given(roots: Sequence[Path], links: Sequence[Path]) -> list[Path]:
    """The ``links`` (found by a walk, spelled with its root) that are not themselves one of
    ``roots``: a link given as a root is read as one, not left unread."""
    given = {root.absolute() for root in roots}
    return [link for link in links if link.absolute() not in given]
