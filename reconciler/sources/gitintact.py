"""The tree in force, checked against its commit before a start reads it.

git writes a checkout's files without syncing them to disk (no ``core.fsync`` setting covers a
worktree), and the switch of ``current`` is made durable right after it: a power loss can leave
the tree in force with files emptied or gone, and so can a hand in the state directory. Read as
it is, such a tree dropped the tasks of those files without an error, until the next push (a
fetch of the same revision checks nothing out). So before the first pass of a start reads the
tree in force, each file and link its commit writes there is compared with what is on disk (its
kind and size: one ``lstat`` each, nothing read), and a tree that differs is checked out again
from the mirror (``Revisions.check_out_again``), with a warning naming its first differences.
A tree that cannot be checked (no mirror, or one without the commit) is read as it is.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from reconciler.sources.gitcheckout import TreeEntry, plan_checkout
from reconciler.sources.gitprocess import GitError
from reconciler.sources.gitrepo import GitRepo
from reconciler.sources.gitrevisions import Revisions, make_recognisable

log = logging.getLogger("crontask.sources.git")

_LINK = "120000"
# The differences a warning names (the rest are counted).
MAX_NAMED = 5
_MAX_ERROR = 300


def differences(tree: Path, files: Iterable[TreeEntry]) -> list[str]:
    """The paths of ``files`` that ``tree`` does not hold as the commit does: missing, of
    another kind (a file for a link), or of another size."""
    found, top = [], f"{tree}/"
    for entry in files:
        try:
            status = os.lstat(top + entry.path)
        except OSError:
            found.append(entry.path)
            continue
        kind = stat.S_ISLNK if entry.mode == _LINK else stat.S_ISREG
        if not kind(status.st_mode) or status.st_size != entry.size:
            found.append(entry.path)
    return sorted(found)


def check_in_force(revisions: Revisions, repo: GitRepo, fields: dict[str, object]) -> bool:
    """Check the tree in force against its commit, and check it out again if it differs (see
    the module); True if it was. ``fields`` name the source in the log. Raises nothing."""
    sha = revisions.applied
    if sha is None:
        return False
    try:
        make_recognisable(repo.git_dir)  # one power loss may have damaged both
        plan = plan_checkout(repo, sha, revisions.path, revisions.limits)
    except (GitError, OSError):  # no mirror, one without the commit, refused now: read as it is
        return False
    differ = differences(revisions.worktrees / sha, plan.files)
    if not differ:
        return False
    said = {**fields, "revision": sha, "differences": len(differ)}
    said["paths"] = ", ".join(differ[:MAX_NAMED])
    try:
        revisions.prepare(repo)  # a git an earlier crontask left running is stopped first
        revisions.check_out_again(repo, sha)
    except (GitError, OSError) as err:
        said["error"] = str(err)[:_MAX_ERROR]
        log.warning(
            "git tree in force differs from its commit; not checked out again",
            extra={"fields": said},
        )
        return False
    log.warning(
        "git tree in force differs from its commit: checked out again", extra={"fields": said}
    )
    return True
