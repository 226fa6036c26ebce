"""The files of the git source's worktree in force, read as a folder is (``DirectorySource``),
but for git's own ``.git``.

Contract: a link of the commit may lead to any file of the commit, and confinement to the
worktree (``confine_to``) refuses one that leads out of it. ``repository_files`` is that rule,
and the only place it is made: ``validate``/``plan --git-path`` read a checkout with it too. One
file inside the worktree is no file of the commit: its ``.git``, crontask's ``gitdir:
<state_dir>/.../repo.git/worktrees/<sha>`` (git never checks out a ``.git`` of a commit). A file
whose resolved path runs through ``.git`` at the top of the worktree is an error of the link
that leads there, as one out of the repository is; nothing is read through it, and the message
names neither the state directory nor what the file says. So is a link that cannot be followed
at all (``reading.resolved``): where it leads is not known. The worktree is crontask's own and
does not change while it is read (the git source holds its tree lock), so resolving the path
before ``DirectorySource`` reads it (on the descriptor it opens) lets nothing slip in between.

A submodule (a gitlink, mode 160000) is checked out as an empty folder: submodules are not
fetched. git writes no other empty folder (it tracks files, not folders), so an empty folder
where files were read before is a submodule that replaced them (``--git-path`` itself, maybe):
it is an error of that folder and the tasks of those files are kept, as for a link to a folder
not entered; a commit must not remove tasks by turning their folder into a submodule.

An entry git never checks out (``tasks/..``, ``tasks/.GIT``: ``gitnames``) is no file of the
worktree either; the checkout's plan found it (``gitcheckout``), and it is an error of its path
(``refused``), so that a file of the commit is never silently missing. No revision ever wrote
one, so no task of its path was read before to keep.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from reconciler.core.desired import DefinitionError, Location
from reconciler.sources.files import DirectorySource
from reconciler.sources.filestate import FileState, Signature
from reconciler.sources.reading import UNFOLLOWED, resolved, within
from reconciler.sources.rootpaths import closest_root
from reconciler.sources.unread import folders_up, under_any

INTO_GIT = "a symbolic link that leads to git's own .git, not a file of the repository: not read"
REPOSITORY = "the repository"  # how messages name where links may lead
SUBMODULE = "a submodule (an empty folder): not read; the tasks of files once here are kept"
NEVER_WRITTEN = (
    "a name git keeps for itself and never checks out ('.', '..', '.git' in any case, or a name"
    " NTFS reads as '.git'): not in the checkout, not read"
)
# A commit may hold 200 000 such entries with paths of 4 KB: this many are named, each cut to
# this many characters, and the rest is one error at ``--git-path``.
MAX_NEVER_WRITTEN = 100
MAX_SHOWN_PATH = 255
NEVER_WRITTEN_CUT = f"{NEVER_WRITTEN}; its path, longer than {MAX_SHOWN_PATH} characters, is cut"


def more_never_written(count: int) -> str:
    return (
        f"and {count} more entries git never checks out, past the first {MAX_NEVER_WRITTEN}"
        " named: not in the checkout, not read"
    )


class WorktreeFiles(DirectorySource):
    """A ``DirectorySource`` over a git worktree (``confine_to``) that never reads its ``.git``.
    ``refused``: where in it the revision read has entries git never wrote (the git source's
    ``Revisions.refused``), each an error of its path, with what to say of it."""

    def __init__(
        self,
        *args: Any,
        refused: Callable[[str | None], Sequence[tuple[Path, str]]] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(*args, **kw)
        self._never_written = refused

    def load(self, path: Path, signature: Signature) -> tuple[Signature, str] | FileState | None:
        """As ``DirectorySource.load``; a file in ``.git`` is an error of the link to it, and
        so is a link that cannot be followed."""
        root, _ = self._confinement(path)
        real = resolved(path)
        if real is None or root is None:
            return self._not_read(path, signature, UNFOLLOWED)
        if within(real, os.path.join(root, ".git")):
            return self._not_read(path, signature, INTO_GIT)
        return super().load(path, signature)

    def scan(self) -> tuple[list[Path], list[Path]]:
        """As ``DirectorySource.scan``, and the submodules where files were read before (see
        the module docstring) are places not read too."""
        present, unread = super().scan()
        listed = set(present)
        found: dict[Path, bool] = {}  # folder -> whether it is an empty folder, this scan
        submodules: set[Path] = set()
        places = {str(p) for p in unread}  # per file O(depth), not O(places): see unread
        there: dict[Path, bool] = {}  # folder -> whether it exists (lexists), this scan
        for path in self._files:
            if path in listed or under_any(path, places):
                continue
            root = closest_root(self.roots, path)
            if root is None:
                continue
            # The deepest folder still there on its way (the file's own path, for a file turned
            # into a submodule): a submodule holds nothing. Each folder is looked at once: a
            # commit deleting 10 000 files of one folder listed it 9 999 times.
            for folder in folders_up(path, root):
                if folder not in there:
                    there[folder] = os.path.lexists(folder)
                if there[folder]:
                    if folder not in found:
                        found[folder] = _empty_folder(folder)
                    if found[folder]:
                        submodules.add(folder)
                    break
        for folder in sorted(submodules):
            where = Location(self.kind, self._display(folder), revision=self.revision)
            self._walk_errors.append(DefinitionError(where, SUBMODULE))
        for place, why in self._never_written(self.revision) if self._never_written else ():
            where = Location(self.kind, self._display(place), revision=self.revision)
            self._walk_errors.append(DefinitionError(where, why))
        self.unread = unread + sorted(submodules)
        return present, list(self.unread)

    def _not_read(self, path: Path, signature: Signature, why: str) -> FileState:
        where = Location(self.kind, self._display(path), 1, 1, self.revision)
        return FileState(signature, None, (DefinitionError(where, why),), revision=self.revision)


def _empty_folder(folder: Path) -> bool:
    """Whether ``folder`` is a folder (not a link to one) with nothing in it."""
    if os.path.islink(folder) or not os.path.isdir(folder):
        return False
    try:
        with os.scandir(folder) as entries:
            return next(entries, None) is None
    except OSError:  # the walk reports a folder that cannot be listed
        return False


def repository_files(roots: Sequence[Path], repository: Path, **options: Any) -> WorktreeFiles:
    """The files under ``roots`` (``--git-path`` in a tree of ``repository``) as ``crontask run
    --git`` reads them: a link may lead to any file of ``repository`` but its ``.git``, never out
    of it, whatever folder of it ``roots`` name (the README's *Git*: "links between files of
    the repository keep working"). The one rule for the git source (its worktree in force) and
    for ``validate``/``plan --git-path`` (a checkout): a link into ``shared/`` from the tasks
    folder must not pass one and fail the other. ``options``: ``DirectorySource``'s."""
    return WorktreeFiles(roots, confine_to=repository, confine_label=REPOSITORY, **options)
