"""Which root of the directory source (``files``) a path is of, when the roots nest.

A folder may be given under another one (``crontask run tasks tasks/shared``), maybe through a
link that the walk of the outer folder does not enter (``tasks/shared -> ../shared``). A path
under both is the inner root's: it is the root the user named for it, and only its walk reads
it. So the inner root decides where the links of its files may lead, and whether its files are
held when it suddenly yields nothing; the outer root does not count them among its own tasks
(each file counted once) nor report the link as "not entered". The order the roots are given
in changes none of it.

Roots and paths are never resolved (see ``files``): they are compared as ``os.path.abspath``
spells them, relative ones from the current folder and ``..`` taken off lexically, so that
``tasks/shared`` and ``$PWD/tasks/shared`` are one folder, and the closest root holding a path
is the longest. A root given twice so is read once, and one given under another in another
spelling is respelled with the outer one's (``one_spelling``): the outer walk finds its files
spelled so, and a file found twice must be one path, not two that define the same tasks.

A root another user may change (its owner, whoever may write it, or a folder on its path:
``statedir``'s rule) is warned of once at the start of ``crontask run`` (``checked_roots``):
anyone able to write it runs commands as crontask's user. Only warned of: such setups worked
before this check, and refusing them would stop them at an upgrade.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from reconciler import statedir
from reconciler.sources.reading import resolved
from reconciler.sources.rootstate import is_within

log = logging.getLogger("crontask")
# The roots this process has warned of: a reload makes a new source, not a new warning.
_warned: set[str] = set()


def _absolute(path: Path) -> Path:
    """``path`` as roots are compared: absolute, ``..`` taken off lexically, links not
    followed (``os.path.abspath``)."""
    return Path(os.path.abspath(path))


def _under(path: str, root: str) -> bool:
    """Whether the ``os.path.abspath`` spelling ``path`` is or lies under ``root``'s: on
    strings, as Paths took more than twice as long (this is asked for each file read)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def closest_root(roots: Sequence[Path], path: Path) -> Path | None:
    """The longest of ``roots`` that ``path`` is or lies under, as given; None if it is under
    none."""
    spelled = os.path.abspath(path)
    holding = [(a, root) for root in roots if _under(spelled, a := os.path.abspath(root))]
    return max(holding, key=lambda held: len(held[0]), default=(None, None))[1]


def inner_roots(roots: Sequence[Path], root: Path) -> list[Path]:
    """The other ``roots`` given under ``root``: its files under them are theirs."""
    outer = os.path.abspath(root)
    return [
        other
        for other in roots
        if (inner := os.path.abspath(other)) != outer and _under(inner, outer)
    ]


def not_given(roots: Sequence[Path], links: Sequence[Path]) -> list[Path]:
    """The ``links`` (found by a walk, spelled with its root) that are not themselves one of
    ``roots``: a link given as a root is read as one, not left unread."""
    given = {os.path.abspath(root) for root in roots}
    return [link for link in links if os.path.abspath(link) not in given]


def one_spelling(roots: Sequence[Path]) -> list[Path]:
    """``roots`` read once each: one that is another's path in another spelling is left out,
    and one under another is spelled with the outermost (``tasks/shared`` beside
    ``$PWD/tasks``: ``$PWD/tasks/shared``), unless that spelling leads elsewhere (``..``
    after a link goes up from where the link leads, not lexically): then it stays as given."""
    first: dict[Path, Path] = {}
    for root in roots:
        first.setdefault(_absolute(root), root)
    spelled = []
    for place, root in first.items():
        outer = min(
            (a for a in first if a != place and is_within(place, a)),
            key=lambda a: len(a.parts),
            default=None,
        )
        respelled = root if outer is None else first[outer] / place.relative_to(outer)
        spelled.append(respelled if _same_file(respelled, root) else root)
    return spelled


def _same_file(one: Path, other: Path) -> bool:
    """Whether both lead to one file; one that cannot be looked at is only itself."""
    try:
        return os.path.samefile(one, other)
    except OSError:
        return one == other


def checked_roots(roots: Sequence[Path]) -> None:
    """One warning line, once per process, for each of ``roots`` that a user other than root
    and crontask's own may change (:func:`others_may_change`). Called at the start of
    ``crontask run``: whoever may write a tasks folder may add a command task, which then
    runs as crontask's user. A warning, not a refusal: such setups worked before, and a
    shared folder may be meant (a team's own group is the process's, and passes)."""
    for root in roots:
        why = others_may_change(root)
        if why is None or str(root) in _warned:
            continue
        _warned.add(str(root))
        log.warning(
            "others may change the tasks folder: whoever may write it can add a task that runs"
            " as crontask's user; make it and each folder on its path root's or this user's"
            " (chown) and writable by its owner only (chmod go-w)",
            extra={"fields": {"path": str(root), "why": why}},
        )


def others_may_change(root: Path) -> str | None:
    """Why another user may change what ``root`` holds, None if no one else may, by
    ``statedir``'s rule: the root as it leads (sticky or not: sticky keeps others from moving a
    file, not from adding one) and every folder on its path, as given and as links lead (those
    may be sticky, as ``/tmp``). A missing root: None (``files`` says it is missing)."""
    try:
        st = os.stat(root)
    except OSError:
        return None
    why = statedir.others_may_write(st)
    if why is not None:
        return f"{resolved(root) or root}: {why}" if os.path.islink(root) else why
    try:
        statedir.check_ancestors(root, "tasks folder", follow=True)
    except statedir.Refused as err:
        return err.reason
    except OSError:
        return None
    return None
