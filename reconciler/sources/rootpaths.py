"""Which root of the directory source (``files``) a path is of, when the roots nest.

A folder may be given under another one (``crontask run tasks tasks/shared``), maybe through a
link that the walk of the outer folder does not enter (``tasks/shared -> ../shared``). A path
under both is the inner root's: it is the root the user named for it, and only its walk reads
it. So the inner root decides where the links of its files may lead, and whether its files are
held when it suddenly yields nothing; the outer root does not count them among its own tasks
(each file counted once) nor report the link as "not entered". The order the roots are given
in changes none of it.

Roots and paths are compared as spelled, never resolved (see ``files``): a path found under a
root is spelled with that root, so the closest root holding it is the longest one. For that,
the command line's roots are respelled once, at start (``one_spelling``, from
``existing_paths``), never per file: ``tasks`` and ``$PWD/tasks/shared`` are two spellings of
one path, so the inner one takes the outer one's (``tasks/shared``), the spelling the outer walk
finds its files by (two spellings of one file would define its tasks twice), and ``tasks`` and
``$PWD/tasks`` are read once. ``$PWD`` may name the current folder through links (a home
folder that is one): a relative root is compared under it as well as under the folder as the
process spells it. Nothing else is taken for the same path: not ``..`` taken off (after a link
it goes up from where the link leads), not two links to one folder. Those are read as given,
and a task found twice is reported defined twice: loud, never a folder left unread. What is
compared is the paths as at start: a folder renamed later is followed as the spelling kept.

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


def one_spelling(roots: Sequence[Path]) -> list[Path]:
    """``roots`` in the order given, each spelling once, and each one under another respelled
    with the outermost one's spelling (the walk of that one finds its files so). Spellings are
    compared as absolute paths, a relative one put under the current folder as the process
    spells it and as the shell does (``$PWD``, when it names that same folder through links),
    nothing else changed (``..`` kept, no link followed): two spellings are taken for one path
    only where they are one as the system reads them at start."""
    bases = _current_folders()
    given: dict[Path, Path] = {}  # each absolute spelling of a root: the root as given
    places: list[tuple[Path, list[Path]]] = []
    for root in roots:
        absolute = [root] if root.is_absolute() else [base / root for base in bases]
        if any(spelling in given for spelling in absolute):
            continue  # given before, in one of its spellings: read once
        for spelling in absolute:
            given[spelling] = root
        places.append((root, absolute))
    spelled = []
    for root, absolute in places:
        holders = [
            (outer, place)
            for place in absolute
            for outer in given
            if given[outer] != root and is_within(place, outer)
        ]
        if not holders:
            spelled.append(root)
            continue
        outer, place = min(holders, key=lambda held: len(held[0].parts))
        spelled.append(given[outer] / place.relative_to(outer))
    return spelled


def _current_folders() -> list[Path]:
    """The current folder as the process spells it (every link resolved) and, when it names
    the same folder, as the shell does (``$PWD``, through the links it was reached by:
    ``$PWD/tasks`` is what a user types beside ``tasks``)."""
    here = Path.cwd()
    shell = os.environ.get("PWD", "")
    logical = Path(shell)
    if (
        not logical.is_absolute()
        or logical == here
        or any(part in (".", "..") for part in shell.split("/"))
    ):
        return [here]
    try:
        same = os.path.samestat(os.stat(logical), os.stat(here))
    except OSError:
        return [here]
    return [here, logical] if same else [here]


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
