"""The revisions of one git source on disk, and which one is in force.

Kept apart from ``git`` (the sync loop: when to fetch, what failed, the backoff, the status)
because this is the part that outlives the process: where ``current`` points is the revision in
force after a restart, before any fetch.

Under the source's state folder ``<state_dir>/git/<key>/``:

- ``worktrees/<sha>``: one commit, checked out with ``git worktree add --detach --no-checkout``
  and a ``git checkout`` of ``path`` alone (with what its links lead to in the commit:
  ``gitcheckout.checkout_paths``). A revision over the checkout bounds is refused whole, and
  nothing of it is written.
- ``worktrees/<sha>.refused``: the entries under ``path`` git never writes
  (``gitcheckout.Checkout.refused``), for the reading to name as errors (``gitfiles``), after a
  restart too; there only while there are some. The first ``MAX_NEVER_WRITTEN`` of them, each
  cut past ``MAX_SHOWN_PATH`` characters, and how many more.
- ``current -> worktrees/<sha>``: the revision in force. It moves atomically (a temporary
  symlink renamed over it), as git-sync does, and the rename is durable before older worktrees
  are deleted.

A worktree that cannot be deleted (an entry of it made immutable, a folder without write
access) is one warning, and the switch still succeeds; it is tried again at each switch, and
at the first sync after a start. A stop cuts a deletion short (``gittree.Stopped``): what is
left is deleted then too.

The bare repository ``repo.git`` is a cache of the remote: one that a fetch finds damaged
(a zero-length loose object or ref, what a power loss can leave: git does not fsync them by
default) failed every fetch for ever. :meth:`Revisions.discard_damaged` deletes it, and the
next sync clones it again; the revision in force stays. Only once the damage is found in it
(git's words may be an ssh server's); a mirror whose check cannot finish (too large for its
deadline or memory limit) is kept, and after ``CHECK_LIMIT`` such checks in a row a new clone
is made beside it (``repo.new.git``) and renamed in its place once its fetch succeeded: a
sound mirror is never deleted before a replacement exists.

Not thread-safe: the caller holds one lock across :meth:`Revisions.switch` and every read of
the tree in force; :meth:`Revisions.remove_old` runs after the switch, outside that lock (it
deletes only trees no longer ``current``), one sync at a time (``gitmaintenance``).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from reconciler import statedir
from reconciler.sources.gitcheckout import CheckoutLimits, plan_checkout
from reconciler.sources.gitfiles import (
    MAX_NEVER_WRITTEN,
    MAX_SHOWN_PATH,
    NEVER_WRITTEN,
    NEVER_WRITTEN_CUT,
    more_never_written,
)
from reconciler.sources.gitmaintenance import end_orphans, found_damaged
from reconciler.sources.gitprocess import GitCancelledError, GitError
from reconciler.sources.gitrepo import GitRepo
from reconciler.sources.gittree import Stopped, remove_tree

log = logging.getLogger("crontask.sources.git")

# What a fetch says when the repository's own objects or refs are damaged (a ref of ours that
# names an object we do not have whole ends in "did not send all necessary objects"): looked
# for in git's own fatal/error lines alone (``GitError.said``), never in what the remote said
# (an ssh server's "ERROR: this repository is empty or has moved", a smart server's error
# packet, "fatal: remote error: ... is empty": each deleted the mirror, a clone at every retry).
_DAMAGED = ("bad object", "is corrupt", "did not send all necessary objects", "is empty")
# How much of an error a warning carries (a path in it may run to 4 KB).
_MAX_ERROR = 300
# Seconds before a mirror git says is damaged is checked again, after a check that could not
# finish (``found_damaged``: a mirror too large for the deadline or the memory limit).
CHECK_AGAIN = 600.0
# Unfinished checks in a row (each after a fetch git says failed on damage) before a new clone
# is made beside the mirror: a damaged mirror too large to check failed every fetch for ever.
CHECK_LIMIT = 3
# The new clone, beside the mirror; and the mirror's name while the clone takes its place.
REPLACEMENT = "repo.new.git"
REPLACED = "repo.old.git"
# What git init writes in the mirror's HEAD, and how much of one is looked at.
_HEAD = b"ref: refs/heads/master\n"
_HEAD_READ = 4096
# Beside a worktree: the entries of its revision git never wrote (see the module).
REFUSED = ".refused"
# The tree in force while it is checked out again (``check_out_again``).
ASIDE = ".aside"


def make_recognisable(git_dir: Path) -> None:
    """Make the mirror one git takes for a repository again: a ``HEAD`` git would not read
    (empty or garbled, as a power loss can leave it: git writes it once, when the mirror is
    made, and never syncs it) written anew, a ``refs`` or ``objects`` folder gone (``refs``
    holds only empty folders once git packed its refs: a cleaner of empty folders takes it)
    made again. Else every fetch failed for ever (``not a git repository``), nothing checked
    or cloned again. Nothing reads ``HEAD`` (the fetch keeps its own ref); what is missing of
    the rest is damage the fetch then finds, as any other (``discard_damaged``)."""
    head = git_dir / "HEAD"
    try:
        with head.open("rb") as file:
            said = file.read(_HEAD_READ)
    except OSError:  # none: ``GitRepo.ensure`` makes the repository again
        return
    fields = {"repository": str(git_dir)}
    if not (
        (said.startswith(b"ref:") and said[4:].lstrip().startswith(b"refs/"))
        or re.match(rb"[0-9a-fA-F]{40}", said)
    ):
        scratch = git_dir / f".HEAD.{os.getpid()}"
        scratch.write_bytes(_HEAD)
        os.replace(scratch, head)
        log.warning("git mirror's HEAD damaged: written anew", extra={"fields": fields})
    for name in ("refs", "objects"):
        if not (git_dir / name).is_dir():
            (git_dir / name).mkdir()
            log.warning(f"git mirror's {name} folder missing: made anew", extra={"fields": fields})


class Mirror(enum.Enum):
    """What ``Revisions.discard_damaged`` did with the mirror."""

    KEPT = "kept"
    DELETED = "deleted"  # the next sync clones it again
    REPLACED = "replaced"  # by a new clone, whose fetch succeeded


# What a failed fetch's error adds for what ``Revisions.discard_damaged`` did with the mirror
# (a replaced one: its next fetch is the new revision's).
MIRROR_SAID = {
    Mirror.KEPT: "",
    Mirror.DELETED: "; the local mirror was damaged: deleted, cloned again at the next sync",
    Mirror.REPLACED: "; the local mirror, said damaged and too large to check, was cloned anew "
    "beside it, in its place",
}


class Revisions:
    """The worktrees under ``base``; ``applied`` is the revision ``current`` points at (None
    before the first checkout)."""

    def __init__(self, base: Path, *, path: str, limits: CheckoutLimits) -> None:
        self.base = base
        self.current = base / "current"
        self.worktrees = base / "worktrees"
        self.path = path  # checked out: this, and what its links lead to
        self.limits = limits
        self.applied: str | None = self._read_current()
        self._undeleted: set[str] = set()  # worktrees warned about: once each
        self._made: Path | None = None  # the repository ``prepare`` made, in this sync
        self._check_after = 0.0  # the monotonic time a damage check may run again
        self._unfinished = 0  # damage checks that did not finish, in a row

    def prepare(self, repo: GitRepo) -> None:
        """Before a fetch: the repository exists, and git keeps no record of a worktree but
        the one in force (``GitRepo.forget_worktrees``: a leftover one failed every fetch).
        Raises GitError or OSError."""
        self._made = None
        new, old = self.base / REPLACEMENT, self.base / REPLACED
        if old.is_dir() and new.is_dir() and not repo.git_dir.exists():
            # Killed between ``_replace``'s two renames: the mirror went aside only once the
            # new clone's fetch had succeeded. It takes its place, rather than a third clone.
            os.rename(new, repo.git_dir)
        for name in (REPLACEMENT, REPLACED):  # a replacement cut short by a kill
            if (left := self.base / name).exists():
                end_orphans(left)  # its fetch, left running
                remove_tree(left)
        make_recognisable(repo.git_dir)
        self._made = repo.git_dir if repo.ensure() else None
        repo.forget_worktrees(keep=self.applied)

    def fetched(self) -> None:
        """A fetch succeeded: unfinished damage checks count again from none."""
        self._unfinished = 0

    def discard_damaged(
        self, repo: GitRepo, error: Exception, clone: Callable[[GitRepo], object]
    ) -> Mirror:
        """After a failed fetch: delete the repository if git's own lines of ``error`` say it
        is damaged and the check finds it so (the next ``prepare`` makes a new one, and the
        next fetch fills it). One this sync made is kept: a damage that comes with the remote's
        answer would otherwise be cloned whole again at every retry. After ``CHECK_LIMIT``
        checks in a row that could not finish, ``clone(new)`` fetches into a new repository
        beside it, which takes its place if that succeeded (``_replace``).
        The revision in force is a worktree of its own, and stays. Raises nothing."""
        said = error.said if isinstance(error, GitError) else ()
        damaged = any(sign in line for line in said for sign in _DAMAGED)
        if repo.git_dir == self._made or not damaged or time.monotonic() < self._check_after:
            return Mirror.KEPT
        # An ssh server's stderr may say it in git's words: found here too, or kept.
        found = found_damaged(repo)
        self._unfinished = self._unfinished + 1 if found is None else 0
        if self._unfinished >= CHECK_LIMIT:
            self._unfinished = 0
            mirror = self._replace(repo, clone)
            # The new clone's first check waits as any other: a remote that says damage at
            # every fetch costs a whole clone once per CHECK_LIMIT * CHECK_AGAIN at most.
            self._check_after = time.monotonic() + CHECK_AGAIN
            return mirror
        if found is None:
            # Too large to check within the deadline or the memory limit: kept, said, and not
            # checked again at every sync (each would cost the whole deadline again).
            self._check_after = time.monotonic() + CHECK_AGAIN
            fields = {
                "repository": str(repo.git_dir),
                "again_in_seconds": CHECK_AGAIN,
                "unfinished_checks": self._unfinished,
                "cloned_anew_after": CHECK_LIMIT,
            }
            log.warning(
                "git says the mirror is damaged; the check of it did not finish: kept (cloned "
                f"anew beside it after {CHECK_LIMIT} such checks in a row)",
                extra={"fields": fields},
            )
        if not found:
            return Mirror.KEPT
        try:
            remove_tree(repo.git_dir)
        except FileNotFoundError:
            return Mirror.DELETED
        except OSError as err:
            fields = {"repository": str(repo.git_dir), "error": str(err)[:_MAX_ERROR]}
            log.warning("git mirror damaged, not deleted", extra={"fields": fields})
            return Mirror.KEPT
        return Mirror.DELETED

    def _replace(self, repo: GitRepo, clone: Callable[[GitRepo], object]) -> Mirror:
        """``clone`` a new repository beside ``repo`` and rename it in its place; ``repo`` is
        kept, and the new one deleted, if its fetch fails (a remote that says ``bad object``
        itself, in git's words, would otherwise cost the mirror each time)."""
        new = repo.beside(self.base / REPLACEMENT)
        fields: dict[str, object] = {"repository": str(repo.git_dir)}
        try:
            with contextlib.suppress(FileNotFoundError):
                remove_tree(new.git_dir)
            clone(new)
            os.rename(repo.git_dir, self.base / REPLACED)
        except (GitError, OSError) as err:
            fields["error"] = str(err)[:_MAX_ERROR]
            if isinstance(err, GitCancelledError):  # crontask is stopping: not the remote's
                log.info("git mirror kept: its new clone cut short by the stop")
            else:
                log.warning("git mirror kept: its new clone failed", extra={"fields": fields})
            with contextlib.suppress(OSError):
                remove_tree(new.git_dir)
            return Mirror.KEPT
        with contextlib.suppress(OSError):  # else the next sync clones anew where it was
            os.rename(new.git_dir, repo.git_dir)
        with contextlib.suppress(OSError):  # else at the next prepare
            remove_tree(self.base / REPLACED)
        log.warning("git mirror replaced by a new clone", extra={"fields": fields})
        return Mirror.REPLACED

    def check_out(self, repo: GitRepo, sha: str) -> None:
        """Write the worktree of ``sha`` (``current`` does not move: see :meth:`switch`).
        Raises CheckoutRefusedError, GitError or OSError."""
        dest = self.worktrees / sha
        if dest.exists():
            # Not `current` (checked by the caller), so an interrupted or failed earlier try.
            remove_tree(dest)
        # git's records of other worktrees are leftovers (see prepare); one of `sha` would make
        # git name the new one `<sha>1`. That of `current` stays unless `sha` replaces it.
        repo.forget_worktrees(keep=self.applied if self.applied != sha else None)
        # Only `path`, and what its links lead to: the rest of the commit is never read, and a
        # commit must not fill the disk (a GiB of zeros travels as a MiB).
        plan = plan_checkout(repo, sha, self.path, self.limits)
        statedir.make_dirs(self.worktrees)
        repo.add_worktree(dest, sha, plan.paths)
        record = self.worktrees / f"{sha}{REFUSED}"
        if plan.refused:
            # Bounded: a commit may list 200 000 such names of 4 KB each (40 MB, an error and
            # a log line each). A part kept one character longer than is shown is shown cut.
            kept = plan.refused[:MAX_NEVER_WRITTEN]
            said = "".join(f"{part[: MAX_SHOWN_PATH + 1]}\0" for part in kept)
            if more := len(plan.refused) - len(kept):
                said += f"\0{more}"
            record.write_bytes(said.encode(errors="surrogateescape"))
        else:
            record.unlink(missing_ok=True)

    def check_out_again(self, repo: GitRepo, sha: str) -> None:
        """Write the tree of ``sha``, the revision in force, anew (``gitintact``: the one on
        disk differs from its commit). The tree is set aside meanwhile, put back if the
        checkout fails, and deleted once it succeeded (else by the next ``remove_old``); the
        caller holds the lock of reads. Raises CheckoutRefusedError, GitError or OSError."""
        tree, aside = self.worktrees / sha, self.worktrees / f"{sha}{ASIDE}"
        if aside.exists():
            remove_tree(aside)
        os.rename(tree, aside)
        try:
            self.check_out(repo, sha)
        except BaseException:
            with contextlib.suppress(OSError):
                if tree.exists():
                    remove_tree(tree)
                os.rename(aside, tree)
            raise
        with contextlib.suppress(OSError):
            remove_tree(aside)

    def refused(self, sha: str | None) -> list[tuple[Path, str]]:
        """Where in ``current`` the revision ``sha`` (the one in force) has entries git never
        wrote (see the module), each with what to say of it: at most ``MAX_NEVER_WRITTEN``,
        then one error at ``path`` for the rest; none if it cannot tell."""
        if sha is None:
            return []
        try:
            said = (self.worktrees / f"{sha}{REFUSED}").read_bytes()
        except OSError:  # none, or unreadable: the revision's files are read all the same
            return []
        listed, _, rest = said.decode(errors="surrogateescape").partition("\0\0")
        names = [name for name in listed.split("\0") if name]
        more = len(names[MAX_NEVER_WRITTEN:]) + (int(rest) if rest.isdigit() else 0)
        found = [
            (self.current / name[:MAX_SHOWN_PATH], NEVER_WRITTEN_CUT)
            if len(name) > MAX_SHOWN_PATH
            else (self.current / name, NEVER_WRITTEN)
            for name in names[:MAX_NEVER_WRITTEN]
        ]
        if more:
            found.append((self.current / self.path, more_never_written(more)))
        return found

    def switch(self, sha: str) -> None:
        """Point ``current`` at the tree of ``sha`` in one rename (readers see the old or the
        new), and make it ``applied``. Raises OSError, leaving the revision in force as it was."""
        temporary = self.base / f".current.{uuid.uuid4().hex}"
        # Relative, so the state folder can be moved or mounted elsewhere.
        os.symlink(f"{self.worktrees.name}/{sha}", temporary)
        try:
            os.replace(temporary, self.current)
        except OSError:
            temporary.unlink(missing_ok=True)
            raise
        # Make the rename durable before the old tree is deleted: after a crash, `current`
        # must not point at a folder that is gone.
        fd = os.open(self.base, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self.applied = sha

    def remove_old(self, keep: str, stopped: Callable[[], bool]) -> None:
        """Delete every worktree but ``keep`` (git's record of them: ``prune_worktrees``). One
        that cannot be deleted is a warning (once per worktree), not a failure of the switch.
        Raises ``Stopped`` once ``stopped()`` (asked between entries: a tree of 60 000 files
        held a shutdown 88 s), leaving the rest (part of a tree, never ``keep``) to the next
        call: no tree but ``keep`` is read, and ``check_out`` deletes one it would reuse."""
        for entry in self.worktrees.iterdir():
            if entry.name not in (keep, f"{keep}{REFUSED}"):
                self._remove_worktree(entry, stopped)
        for entry in self.base.iterdir():
            if entry.name.startswith(".current."):  # left by a crash between symlink and rename
                entry.unlink(missing_ok=True)

    def _remove_worktree(self, tree: Path, stopped: Callable[[], bool]) -> None:
        try:
            remove_tree(tree, stopped)
        except Stopped:
            raise
        except OSError as err:
            if tree.name not in self._undeleted:
                self._undeleted.add(tree.name)
                fields = {"worktree": str(tree), "error": str(err)[:_MAX_ERROR]}
                log.warning("git worktree not deleted", extra={"fields": fields})
        else:
            self._undeleted.discard(tree.name)

    def _read_current(self) -> str | None:
        """The revision in force from an earlier run: where ``current`` points, if it is there
        (put back if a kill left it aside in ``check_out_again``)."""
        try:
            target = os.readlink(self.current)
        except OSError:
            return None
        sha = PurePosixPath(target).name
        tree, aside = self.worktrees / sha, self.worktrees / f"{sha}{ASIDE}"
        if not tree.exists() and aside.is_dir():
            with contextlib.suppress(OSError):
                os.rename(aside, tree)
        return sha if tree.is_dir() else None
