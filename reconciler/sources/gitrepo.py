"""The git client, as the git source drives it: one bare repository, fetched and checked out.

Contracts (how each call is run, with its deadline, is ``gitprocess``'s):

- git runs isolated from the machine, and secrets never reach argv or disk: what git's
  environment holds, credentials included, is ``gitenv``'s (``git_env``, re-exported here with
  ``Credentials`` and ``url_credentials``). Every message that leaves this module went through
  ``Redactor``.
- A local repository (``file://`` or a path) is read whoever owns it: git refuses one another
  user owns ("dubious ownership") unless ``safe.directory`` names it, in a config crontask's git
  does not read; the fetch names the repository it was given, and only that one
  (``upload_pack``). URLs and paths follow ``--end-of-options``: not one is read as an option.
- A ``--git-ref`` name is asked for as a branch and as a tag in one fetch (``gitrefs``); one
  the remote has both of is refused (``AmbiguousRefError``), never read as the branch. A ref is
  taken only from the remote ref of exactly its full name (checked in FETCH_HEAD: ``_taken``),
  and read here by exactly its full name (``_stored``), never as git's abbreviations.
- Trees are deleted by ``gittree.remove_tree`` (re-exported here): relative to each folder,
  whatever their depth.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import urllib.parse
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path

from reconciler import statedir
from reconciler.sources import gitmaintenance
from reconciler.sources.gitbounds import DEFAULT_MEMORY_LIMIT, MEMORY_CONFIG
from reconciler.sources.gitenv import INHERITED as INHERITED
from reconciler.sources.gitenv import PASSWORD_VAR as PASSWORD_VAR
from reconciler.sources.gitenv import USERNAME_VAR as USERNAME_VAR
from reconciler.sources.gitenv import Credentials as Credentials
from reconciler.sources.gitenv import git_env as git_env
from reconciler.sources.gitenv import url_credentials as url_credentials
from reconciler.sources.gitprocess import GitError, GitRunner
from reconciler.sources.gitrefs import (
    BRANCHES,
    FULL_SHA,
    HEX,
    PRIVATE,
    TAGS,
    Alternative,
    alternatives,
    fetched,
)
from reconciler.sources.gitsaid import Redactor as Redactor
from reconciler.sources.gittree import remove_tree as remove_tree

# How much of git's stdout is read (past it, a GitError): ``run``'s commands write a few lines
# or SHAs; ``run_bytes``'s largest read is gitcheckout.read_blobs's one cat-file of link
# targets, at most MAX_CHECKOUT_LINKS (1000) of at most MAX_PATH (4 KiB) each, with headers.
_MAX_TEXT_OUTPUT = 1024 * 1024
_MAX_BLOBS_OUTPUT = 8 * 1024 * 1024

# What git says of a ref the remote lacks (it stops at the first one). Its lines are joined
# with "; " (``gitprocess``): over protocol v0 (ssh to a server whose AcceptEnv drops
# GIT_PROTOCOL) "the remote end hung up unexpectedly" follows at times, and its ";" was read as
# part of the name, so the sync failed as not found every other time. A ref name has no space.
_MISSING_REF = re.compile(r"couldn't find remote ref (\S+?)(?=; |\s|$)")


class RefNotFoundError(GitError):
    """The remote was reached but does not have the ref (deleted branch, unknown tag/SHA);
    ``missing`` is the remote ref git named, when it named one."""

    def __init__(self, message: str, missing: str | None = None) -> None:
        super().__init__(message)
        self.missing = missing


class NotACommitError(GitError):
    """The remote has the ref, but it names a blob or a tree (``git tag t <blob>``), which no
    revision can be checked out of: said as such, not as a ref the remote lacks."""


class AmbiguousRefError(GitError):
    """A name that is both a branch and a tag on the remote, an abbreviated SHA that is also a
    branch or tag name, or the start of several commits."""


# What a checkout writes is the blob: no end-of-line conversion, no $Id$ expansion, no
# re-encoding, no filter driver (see GitRepo._as_stored).
_AS_STORED = "* -text -eol -ident -working-tree-encoding -filter\n"


def local_path(url: str) -> str | None:
    """The path of the local repository ``url`` names (``file://`` or a path, as git tells
    them from ``host:path``), None for a remote one."""
    if "://" in url:
        parts = urllib.parse.urlsplit(url)
        return urllib.parse.unquote(parts.path) if parts.scheme.lower() == "file" else None
    return None if ":" in url.partition("/")[0] else url


def upload_pack(url: str) -> list[str]:
    """The options of a fetch from ``url``: for a local repository owned by another user, git's
    ``upload-pack`` refuses it ("dubious ownership") unless ``safe.directory`` names it, and
    neither ``-c`` nor ``GIT_CONFIG_PARAMETERS`` reaches it (git clears the latter for a local
    ``upload-pack``): its command line carries the setting. Both spellings git may compare:
    the path as written (relative ones too) and the real one (git resolves links in it); and
    for each, the repository git may find there: the folder itself (bare), its ``.git`` (a
    working clone) or the folder with ``.git`` added (``repo`` for ``repo.git``)."""
    path = local_path(url)
    if path is None:
        return []
    path = path.rstrip("/") or "/"
    # git's memory settings too (gitbounds.MEMORY_CONFIG): the serving upload-pack and its
    # pack-objects run under the same address-space limit, and without them a local remote of
    # large loose blobs failed every fetch for want of memory.
    command = ["git", *MEMORY_CONFIG]
    for written in dict.fromkeys([path, os.path.realpath(path)]):
        for allowed in (written, os.path.join(written, ".git"), f"{written}.git"):
            command += ["-c", f"safe.directory={allowed}"]
    return ["--upload-pack", shlex.join([*command, "upload-pack"])]  # run by a shell: quoted


class GitRepo:
    """A bare repository at ``git_dir`` and the git calls made on it."""

    def __init__(
        self,
        git_dir: Path,
        *,
        env: Mapping[str, str],
        timeout: float,
        redact: Redactor,
        memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
    ) -> None:
        self.git_dir = git_dir
        self._settings = (env, timeout, redact, memory_limit)
        # Each call marked as crontask's on this repository (the checkout in a worktree too):
        # what an earlier crontask killed hard left running is found by it (gitmaintenance).
        self._runner = GitRunner(
            env=env,
            timeout=timeout,
            redact=redact,
            memory_limit=memory_limit,
            mark=gitmaintenance.marked(git_dir),
        )

    def cancel(self) -> None:
        """Kill the git call in flight (its whole group) and refuse later ones: each raises
        GitError. For a shutdown that must not wait for a remote that hangs."""
        self._runner.cancel()

    @property
    def timeout(self) -> float:
        """The deadline of its git calls, but those given one of their own."""
        return self._runner.timeout

    def beside(self, git_dir: Path) -> GitRepo:
        """A repository at ``git_dir`` whose git calls have this one's environment, deadline,
        redaction and memory limit (a new clone, made before it takes this one's place)."""
        env, timeout, redact, memory_limit = self._settings
        return GitRepo(git_dir, env=env, timeout=timeout, redact=redact, memory_limit=memory_limit)

    # -- the operations ------------------------------------------------------------------

    def ensure(self) -> bool:
        """Create the bare repository if it is missing (or was left half-made): True if it was
        made now. A git an earlier crontask left running on it is stopped first
        (``gitmaintenance``): what follows deletes its worktree's record, and a checkout left
        to run wrote on in the tree the next one was made in."""
        gitmaintenance.remove_leftovers(self.git_dir)
        self._remove_scratches()
        if (self.git_dir / "HEAD").is_file():
            return False
        with contextlib.suppress(OSError):
            remove_tree(self.git_dir)
        statedir.make_dirs(self.git_dir.parent)  # 0700: checkouts may hold secrets
        # Made under a temporary name and renamed, so a crash never leaves a half-made one.
        scratch = self.git_dir.with_name(f".{self.git_dir.name}.{os.getpid()}")
        self.run(["init", "--bare", "--quiet", "--end-of-options", str(scratch)], git_dir=False)
        os.rename(scratch, self.git_dir)
        return True

    def _remove_scratches(self) -> None:
        """Delete the scratch repositories of ``ensure`` calls killed before their rename: each
        is named after its process's pid, so no later process came upon one of them."""
        prefix = f".{self.git_dir.name}."
        scratches: list[Path] = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.git_dir.parent) as entries:
            for entry in entries:
                if entry.name.startswith(prefix) and entry.name[len(prefix) :].isdigit():
                    scratches.append(Path(entry.path))
        for scratch in scratches:
            with contextlib.suppress(OSError):
                remove_tree(scratch)

    def forget_worktrees(self, keep: str | None) -> None:
        """Delete git's record of every worktree (``repo.git/worktrees/<name>``) but ``keep``'s.
        A ``git worktree add`` killed (a shutdown's cancel, the timeout, crontask killed)
        between writing its record (``locked``, and a HEAD of zeros) and the ``update-ref``
        child that sets that HEAD leaves one that fails every later fetch ("bad object
        worktrees/<sha>/HEAD"), and ``git worktree prune`` never removes a locked record. Each
        worktree is crontask's own, named after its SHA, and only the one in force is needed.
        Only between git calls (as ``gitmaintenance.remove_leftovers``). Raises OSError."""
        stale: list[Path] = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.git_dir / "worktrees") as it:
            stale += [Path(e.path) for e in it if e.name != keep]
        for record in stale:
            remove_tree(record)

    def fetch_ref(self, url: str, ref: str) -> tuple[str, ...]:
        """Fetch ``ref``'s ``alternatives`` (a name's branch and tag) in one fetch; the names it
        wrote, for ``resolve``. git stops at the first ref the remote lacks and names it: that
        one is left out and the rest asked for again (a second fetch when a name is only a
        branch or only a tag; no objects come with the first). RefNotFoundError if the remote
        has none. The names of one it lacks are deleted: a fetch that finds nothing prunes
        nothing, and the ref a deleted branch left would keep its commits (or be taken for
        the ref). So are those the fetch did not take from the remote ref of exactly their
        name (``_taken``): git reads a missing ``refs/tags/v1`` as ``refs/heads/refs/tags/v1``."""
        wanted = alternatives(ref)
        while True:
            try:
                self.fetch(url, [spec for each in wanted for spec in each.specs], ref)
            except RefNotFoundError as err:
                lacking = [each for each in wanted if err.missing in each.sources]
                if not lacking or len(lacking) == len(wanted):
                    self._forget([name for each in wanted for name in each.names])
                    raise
                self._forget([name for each in lacking for name in each.names])
                wanted = [each for each in wanted if each not in lacking]
                continue
            taken = self._taken(wanted)
            self._forget([name for each in wanted if each not in taken for name in each.names])
            if not taken:
                raise RefNotFoundError(f"ref {ref!r} not found on remote")
            return tuple(name for each in taken for name in each.names)

    def fetch(self, url: str, specs: Sequence[str], ref: str) -> None:
        """``git fetch --prune --force``: a force-push or a moved tag simply replaces the ref.
        git's automatic maintenance is left to ``collect`` (see ``gitmaintenance``). FETCH_HEAD
        is written (and read by ``_taken``) unless every spec is a pattern: a fetch of every
        branch and tag would list them all."""
        patterns = all("*" in spec for spec in specs)
        args = ["fetch", "--prune", "--force", "--no-tags", "--quiet", "--no-auto-maintenance"]
        args += ["--no-write-fetch-head"] if patterns else []
        # A fetch that fails, or takes nothing, must not leave an earlier fetch's to be read.
        (self.git_dir / "FETCH_HEAD").unlink(missing_ok=True)
        try:
            self._cleanly([*args, *upload_pack(url), "--end-of-options", url, *specs])
        except GitError as err:
            missing = _MISSING_REF.search(str(err))
            if missing is not None:
                message = f"ref {ref!r} not found on remote"
                raise RefNotFoundError(message, missing.group(1)) from None
            raise

    def _taken(self, wanted: Sequence[Alternative]) -> list[Alternative]:
        """Those of ``wanted`` the last fetch took from the remote ref of exactly their name,
        and wrote: FETCH_HEAD, that fetch's own record, names that ref (``fetched``) with the
        object its local name now has. A pattern is matched literally, and taken as it is."""
        head = self.git_dir / "FETCH_HEAD"
        try:
            with head.open("rb") as file:  # a few lines: the URL is the longest part
                record = fetched(file.read(_MAX_TEXT_OUTPUT).decode("utf-8", "replace"))
        except FileNotFoundError:
            record = {}
        return [
            each
            for each in wanted
            if not each.exact
            or all(
                record.get(source) is not None and record.get(source) == self._stored(name)
                for source, name in zip(each.sources, each.names, strict=True)
            )
        ]

    def _stored(self, name: str) -> str | None:
        """The object the ref of exactly the full name ``name`` holds here; None if there is no
        such ref. rev-parse would read a missing ``refs/remotes/origin/cafe`` as
        ``refs/tags/refs/remotes/origin/cafe``, a tag anyone can push (fetched with every
        other when a name could be a SHA)."""
        try:
            return self.run(["show-ref", "--verify", "--hash", "--", name]).strip() or None
        except GitError:
            return None

    def _forget(self, names: Sequence[str]) -> None:
        for name in names:  # on a failure, the next fetch that finds nothing tries again
            with contextlib.suppress(GitError):
                self.run(["update-ref", "-d", name])

    def collect(self) -> None:
        """git's automatic collection (``git gc --auto``: it decides whether there is anything
        to do), with a deadline of its own (see ``gitmaintenance``). GitError if it fails."""
        timeout = gitmaintenance.collection_timeout(self._runner.timeout)
        self._cleanly(gitmaintenance.COLLECT, timeout=timeout)

    def _cleanly(self, args: Sequence[str], *, timeout: float | None = None) -> None:
        """A fetch killed at the timeout leaves what it had received (a remote that is slow, or
        streams for ever, would add to it on every retry until the disk is full), and the
        locks it held; so does a collection. They are deleted before each such call and after a
        failed one (``gitmaintenance.remove_leftovers``). The caller runs one at a time."""
        gitmaintenance.remove_leftovers(self.git_dir)
        try:
            self.run(args, timeout=timeout)
        except GitError:
            gitmaintenance.remove_leftovers(self.git_dir)
            raise

    def resolve(self, url: str, ref: str, names: Sequence[str]) -> str:
        """The commit ``ref`` names, after ``fetch_ref`` fetched ``names`` (the first of them
        that exists); RefNotFoundError if there is none, NotACommitError if what there is
        names a blob or a tree (a tag of one, or its SHA).

        A full SHA is that commit and nothing else. A name the remote has both as a branch and
        as a tag, or an abbreviated SHA that is also the name of a branch or tag, is
        AmbiguousRefError (even when both are at one commit: the next push may differ): a branch
        anyone can push must not stand in for a pinned tag or commit, and guessing which one was
        meant would do just that."""
        if FULL_SHA.fullmatch(ref):
            return self._pinned(url, ref)
        # Each name read exactly (``_stored``), then as the object it holds.
        stored = {name: oid for name in names if (oid := self._stored(name)) is not None}
        found = {name: sha for name, oid in stored.items() if (sha := self.rev_parse(oid))}
        # Both counted whatever they name: a tag of a blob beside the branch is no less a tag.
        present = {n for n, oid in stored.items() if n in found or self._kind_of(oid)}
        if BRANCHES + ref in present and TAGS + ref in present:
            raise AmbiguousRefError(
                f"ref {ref!r} is ambiguous: the remote has both refs/heads/{ref} and"
                f" refs/tags/{ref}; set the ref to refs/heads/{ref} or refs/tags/{ref}"
            )
        named = list(found.values())
        commits = self._commits_starting_with(ref) if HEX.fullmatch(ref) else []
        if named and commits:
            raise AmbiguousRefError(
                f"ref {ref!r} is ambiguous: a branch or tag has this name and a commit SHA starts"
                " with it; use refs/heads/..., refs/tags/... or the full SHA"
            )
        if len(commits) > 1:
            raise AmbiguousRefError(
                f"ref {ref!r} is ambiguous: more than one commit starts with it"
            )
        if named or commits:
            return (named or commits)[0]
        raise self._missing(ref, list(stored.values()))

    def _pinned(self, url: str, sha: str) -> str:
        if self.rev_parse(sha) != sha and self._kind_of(sha) is None:
            # A commit no branch or tag reaches any more: servers that allow it hand it out.
            try:
                pin = ["fetch", "--quiet", "--no-write-fetch-head", "--no-auto-maintenance"]
                spec = f"+{sha}:{PRIVATE}pin"
                self._cleanly([*pin, *upload_pack(url), "--end-of-options", url, spec])
            except GitError:
                raise RefNotFoundError(f"ref {sha!r} not found on remote") from None
        # git reads a full hex name as the object even when a ref has that name.
        if self.rev_parse(sha) != sha:
            raise self._missing(sha, [sha])
        return sha

    def _missing(self, ref: str, names: Sequence[str]) -> GitError:
        """Why ``ref`` names no commit, when none of ``names`` (what was fetched for it) is
        one: one of them names a blob or a tree (NotACommitError, saying which), or there is
        nothing of that name here (RefNotFoundError)."""
        for name in names:
            kind = self._kind_of(name)
            if kind is not None and kind != "commit":
                return NotACommitError(f"ref {ref!r} names a {kind}, not a commit")
        return RefNotFoundError(f"ref {ref!r} not found on remote")

    def _kind_of(self, name: str) -> str | None:
        """What ``name`` names once its tags are peeled (``commit``, ``tree``, ``blob``); None
        if there is no such object here."""
        try:
            peeled = f"{name}^{{}}"
            oid = self.run(["rev-parse", "--verify", "--quiet", "--end-of-options", peeled])
            kind = self.run(["cat-file", "-t", oid.strip()]) if oid.strip() else ""
        except GitError:
            return None
        return kind.strip() or None

    def _commits_starting_with(self, prefix: str) -> list[str]:
        """The commits whose SHA starts with ``prefix`` (by object name only, never a ref)."""
        try:
            out = self.run(["rev-parse", f"--disambiguate={prefix}"])
        except GitError:
            return []
        return [oid for oid in out.split() if self.rev_parse(oid) == oid]

    def _as_stored(self) -> None:
        """The repository's own attributes (above every ``.gitattributes`` of the commit, for
        every worktree) turn off what would write a file other than its blob: the sizes
        checked before the checkout (``gitcheckout``) are the blobs', and a commit's
        ``ident``, ``working-tree-encoding`` or ``eol`` multiplied them (a 12 MB blob of
        ``$Id$`` was written as 141 MB)."""
        info = self.git_dir / "info"
        attributes = info / "attributes"
        with contextlib.suppress(OSError):
            if attributes.read_text() == _AS_STORED:
                return
        info.mkdir(mode=0o700, exist_ok=True)
        scratch = info / f".attributes.{os.getpid()}"
        scratch.write_text(_AS_STORED)
        os.replace(scratch, attributes)

    def rev_parse(self, name: str) -> str | None:
        try:
            out = self.run(
                ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}"]
            )
        except GitError:
            return None
        return out.strip() or None

    def add_worktree(self, dest: Path, sha: str, paths: Sequence[str]) -> None:
        """Check ``paths`` of ``sha`` out into the new folder ``dest`` (detached: no branch is
        involved), and nothing else of the commit ("." for all of it). Each file as its blob
        is (``_AS_STORED``)."""
        self._as_stored()
        try:
            add = ["worktree", "add", "--detach", "--no-checkout", "--quiet", "--end-of-options"]
            self.run([*add, str(dest), sha])
            if paths:
                pathspecs = "".join(f"{p}\0" for p in paths).encode("utf-8", "surrogateescape")
                checkout = ["checkout", "--quiet", sha, "--pathspec-from-file=-"]
                self.run(
                    ["--literal-pathspecs", *checkout, "--pathspec-file-nul"],
                    git_dir=False,
                    cwd=dest,
                    input=pathspecs,
                )
        except GitError:
            # git removes a failed checkout itself; make sure, and forget its record: by hand,
            # as a killed add leaves it locked (see forget_worktrees) and a cancel stops git.
            with contextlib.suppress(OSError):
                remove_tree(dest)
            with contextlib.suppress(OSError):
                remove_tree(self.git_dir / "worktrees" / dest.name)
            with contextlib.suppress(GitError):
                self.prune_worktrees()
            raise

    def prune_worktrees(self) -> None:
        self.run(["worktree", "prune"])

    # -- running git ---------------------------------------------------------------------

    def run(
        self,
        args: Sequence[str],
        *,
        git_dir: bool = True,
        cwd: Path | None = None,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> str:
        """git's output (a few lines); GitError (redacted) if it fails, times out (after
        ``timeout``, by default the repository's), was cancelled or writes more than
        _MAX_TEXT_OUTPUT bytes."""
        out = self.run_bytes(
            args,
            git_dir=git_dir,
            cwd=cwd,
            input=input,
            max_stdout=_MAX_TEXT_OUTPUT,
            timeout=timeout,
        )
        return out.decode("utf-8", "replace")

    def run_bytes(
        self,
        args: Sequence[str],
        *,
        git_dir: bool = True,
        cwd: Path | None = None,
        input: bytes | None = None,
        max_stdout: int = _MAX_BLOBS_OUTPUT,
        timeout: float | None = None,
    ) -> bytes:
        """git's stdout; GitError past ``max_stdout`` bytes (see ``GitRunner.run_bytes``)."""
        prefix = [f"--git-dir={self.git_dir}"] if git_dir else []
        return self._runner.run_bytes(
            [*prefix, *args], cwd=cwd, input=input, max_stdout=max_stdout, timeout=timeout
        )

    def run_records(
        self,
        args: Sequence[str],
        *,
        separator: bytes,
        max_record: int,
        timeout: float | None = None,
    ) -> Generator[bytes, None, None]:
        """git's output record by record, as ``GitRunner.run_records`` (``timeout``, by default
        the repository's): close it to stop git."""
        return self._runner.run_records(
            [f"--git-dir={self.git_dir}", *args],
            separator=separator,
            max_record=max_record,
            timeout=timeout,
        )
