"""Whether a revision of the git source, checked out, yields no task where the revision in force
has some: such a revision is refused whole, as one over the checkout bounds is, and ``current``
stays on the revision with tasks (``gitrevisions``).

Applied, it held its tasks in memory alone (the directory source's hold, ``rootstate``): the
next start read the empty revision in force, and every task was gone. The rules are those of
the reading (``files``): a ``--git-path`` the revision does not have, that leads out of the
repository through a link, or that is a submodule (an empty folder) keeps the tasks whatever
``--allow-empty`` says; one that holds no task file keeps them unless ``--allow-empty``
(``guard_empty`` False), which applies the revision, and its tasks go. A revision with no
revision in force before it (the first clone), or after one without tasks, is applied as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.sources.gitfiles import REPOSITORY
from reconciler.sources.gitfiles import _empty_folder as empty_folder
from reconciler.sources.reading import resolved, within
from reconciler.sources.rootstate import GONE_ROOT, missing, yields_nothing

# How a refusal ends: what stays, and what lets the revision through.
_STAYS = "the tasks of the revision in force stay"
_ALLOW = "; --allow-empty lets a revision without task files remove them"


def without_tasks(
    tree: Path, path: str, *, guard_empty: bool, before: Path | None = None
) -> str | None:
    """Why the revision checked out at ``tree`` yields no task from ``path`` (its root) and
    keeps those in force (at ``before``, the tree in force); None if it yields some, or may
    remove them (``--allow-empty``). A folder in force that the revision turns into a file
    yields nothing for the folder's files: the reading holds their tasks (``rootstate``)."""
    root = tree / path if path else tree
    where = f"--git-path {path!r}" if path else REPOSITORY
    real, inside = resolved(root), resolved(tree)
    if real is None or inside is None:
        return f"{where}: a symbolic link on this path cannot be followed; {_STAYS}"
    if not within(real, inside):
        return f"{where}: a symbolic link on this path leads outside {REPOSITORY}; {_STAYS}"
    if (problem := missing(root)) == GONE_ROOT:
        return f"{where} does not exist in it; {_STAYS} until a revision has it"
    if problem is not None:
        return f"{where}: {problem}; {_STAYS}"
    if empty_folder(root):  # git writes no other empty folder (``gitfiles``)
        return f"{where} is a submodule (an empty folder) in it; {_STAYS}"
    if guard_empty and yields_nothing(root, for_root=True):
        return f"{where} holds no task file in it; {_STAYS}{_ALLOW}"
    folder = before is not None and os.path.isdir(before / path if path else before)
    if guard_empty and folder and not os.path.isdir(root):
        return f"{where} is a file in it, a folder in the revision in force; {_STAYS}{_ALLOW}"
    return None


def has_task_files(tree: Path, path: str) -> bool:
    """Whether ``path`` in the revision in force at ``tree`` holds a task file: whether it has
    tasks, before the tree was read in this process."""
    return without_tasks(tree, path, guard_empty=True) is None
