"""What a checkout of the git source writes: ``--git-path`` and what its links lead to, bounded.

A commit is anyone's who can push: it may hold a gigabyte of zeros (a megabyte compressed)
next to the task files, or a thousand links in a chain. Before anything is written, the
commit's trees are listed (``git ls-tree``, nothing checked out) and :func:`checkout_paths`
says which paths a checkout for ``--git-path`` needs: the path, and for every symbolic link in
it the links on its way and what it leads to inside the commit, resolved as the file system
will. A revision over :class:`CheckoutLimits` is :class:`CheckoutRefusedError`, whole.

A link's target is known only once its blob is read, and a chain of distinct links reveals one
link a read. The paths a round of links leads to are resolved together, a step at a time, each
step reading the targets all of them reached in one ``git cat-file``: a thousand chains of forty
links cost forty git calls, not forty thousand. What is left, a chain walked alone, is bounded
by the links all the walks of a revision may pass (``max_hops``).

A listing is read as git writes it and counted as it goes: a tree of a million empty files or
folders costs a few megabytes to push, and is refused at the bound, not read whole first. A
listing that names a path twice (a malformed tree: git checks out one entry, the plan might
have counted the other) is refused too, and so is a name holding a "/" (beside a file of the
part before it, git writes what is under it, not the file). ``fetch.fsckObjects`` would refuse
it at the fetch, but also every repository with an old, harmless fsck warning in its history.

An entry git never writes (``gitnames``: ``tasks/..``, ``tasks/.GIT``) is left out of the
checkout, where git would say ``error: invalid path`` and exit 0, the file silently not there:
the plan names those under ``--git-path`` (``Checkout.refused``), each a definition error at its
path for the reading (``gitfiles``), and asks git for none of them (a pathspec that names one
matches nothing, and fails the checkout).
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
from collections.abc import Collection, Generator, Iterable, Sequence

from reconciler.sources.gitnames import refused_part
from reconciler.sources.gitprocess import GitError, RecordTooLongError
from reconciler.sources.gitrepo import GitRepo
from reconciler.sources.limits import MAX_PATH

# A checkout writes at most this much, in this many files, following this many links; a
# revision over any of them is refused before anything is written. Each file may be
# FILE_SIZE_MARGIN times the size a definition may have (reading refuses that one file alone).
MAX_CHECKOUT_BYTES = 256 * 1024 * 1024
MAX_CHECKOUT_FILES = 100_000
MAX_CHECKOUT_LINKS = 1_000
# The links passed on the way, in all the paths resolved for one revision, each time it is
# passed: a few per link followed is room for chains of links to folders (tasks/x ->
# ../env/prod/x, env/prod -> ../releases/current, ...). Each may cost a git call (a chain
# walked alone) and a walk of its target's names.
MAX_CHECKOUT_HOPS = 4 * MAX_CHECKOUT_LINKS
# The entries (files, folders, submodules) all the listings of one revision may hold: folders
# are not files, yet a commit can hold millions of empty ones. Twice the files: room for a
# folder per file.
MAX_LISTED_ENTRIES = 2 * MAX_CHECKOUT_FILES
FILE_SIZE_MARGIN = 16
_MAX_HOPS = 40  # links on the way of one path, as Linux's ELOOP
_LINK = "120000"  # the mode of a symbolic link (a submodule, "160000", is an empty folder)
# One record of ``ls-tree -l -z``: mode, kind, object id (64 hex digits with SHA-256) and size
# come before the path.
_MAX_RECORD = MAX_PATH + 128


class CheckoutRefusedError(GitError):
    """A revision over the checkout bounds (see ``checkout_paths``); nothing of it is written."""


@dataclasses.dataclass(frozen=True)
class TreeEntry:
    path: str
    mode: str  # "120000": a symbolic link; "160000": a submodule (never fetched)
    kind: str  # blob, tree or commit
    oid: str
    size: int  # of a blob; 0 for the others


@dataclasses.dataclass(frozen=True)
class CheckoutLimits:
    """What one revision may write to disk: each file, all of them, how many, and how many
    symbolic links are followed to find what they lead to (and passed on the way, in all); and
    how many entries its trees may list to find that out."""

    max_file: int
    max_total: int = MAX_CHECKOUT_BYTES
    max_files: int = MAX_CHECKOUT_FILES
    max_links: int = MAX_CHECKOUT_LINKS
    max_entries: int = MAX_LISTED_ENTRIES
    max_hops: int = MAX_CHECKOUT_HOPS


@dataclasses.dataclass(frozen=True)
class Checkout:
    """What a checkout of one revision for ``--git-path`` asks git for (``paths``), and the
    entries under ``--git-path`` git never writes (``refused``: the path up to the name git
    refuses, once for all that is under it), in order; and the files and links it writes, as
    the commit lists them (``files``: what a checkout left on disk is checked against)."""

    paths: list[str]
    refused: list[str]
    files: list[TreeEntry] = dataclasses.field(default_factory=list)


def checkout_paths(repo: GitRepo, sha: str, path: str, limits: CheckoutLimits) -> list[str]:
    """What of ``sha`` a checkout for ``path`` writes: ``path``, and for every symbolic link
    there, the links on its way and what it leads to inside the commit (a link out of the
    commit, or to nothing, is written as it is: reading refuses it). Found in the commit's
    trees, nothing written; CheckoutRefusedError if it is over ``limits``."""
    return plan_checkout(repo, sha, path, limits).paths


def plan_checkout(repo: GitRepo, sha: str, path: str, limits: CheckoutLimits) -> Checkout:
    """``checkout_paths``, and what under ``path`` git never writes (see the module)."""
    plan = _CheckoutPlan(repo, sha, limits)
    paths = plan.paths(path)
    refused = sorted(part for part in plan.refused if _within(part, path))
    return Checkout(paths, refused, plan.files(paths))


class _CheckoutPlan:
    def __init__(self, repo: GitRepo, sha: str, limits: CheckoutLimits) -> None:
        self.repo, self.sha, self.limits = repo, sha, limits
        self.known: dict[str, TreeEntry] = {}  # the entries listed so far, by path
        self.listed: list[str] = []  # the trees (or files) listed whole, recursively
        self.folders: set[str] = set()  # the folders whose entries were listed
        self.wanted: set[str] = set()  # what the checkout names
        self.counted: set[str] = set()
        self.total = 0
        self.entries = 0  # listed, in all the listings
        self.followed: set[str] = set()  # the links whose target was looked for
        self.targets: dict[str, str] = {}  # a link's blob -> its target
        self.hops = 0  # links passed on the way, in all the walks
        self.refused: set[str] = set()  # entries listed that git never writes (``gitnames``)
        self._written: list[str] | None = None  # the entries git writes, sorted (``_writes``)

    def paths(self, path: str) -> list[str]:
        pending = self._follow([("", path)])
        if (entry := self.known.get(path)) is not None and entry.kind == "commit":
            # ``path`` is a submodule: written as the empty folder git makes of one, which the
            # reading reports (``gitfiles``), keeping the tasks of the files once there; not
            # written, it read as a path gone ("path does not exist").
            self.wanted.add(path)
        while pending:
            self.followed.update(link.path for link in pending)
            if len(self.followed) > self.limits.max_links:
                raise CheckoutRefusedError(
                    f"more than {self.limits.max_links} symbolic links to follow"
                )
            self._read_targets(pending)
            pending = self._follow(
                [(link.path.rpartition("/")[0], self.targets[link.oid]) for link in pending]
            )
            pending = [link for link in pending if link.path not in self.followed]
        if "" in self.wanted:
            return ["."] if self._writes("") else []
        # A pathspec git matches nothing with fails the whole checkout: one of a name git
        # never writes (a link to one leads to nothing once written; the reading says so), or
        # a folder that holds only such names (``--git-path`` then holds no file, which the
        # reading reports).
        return sorted(p for p in self.wanted if refused_part(p) is None and self._writes(p))

    def files(self, paths: Sequence[str]) -> list[TreeEntry]:
        """The blobs (files and links) a checkout of ``paths`` writes."""
        self._writes("")  # the entries git writes, found once
        tops = {""} if paths == ["."] else set(paths)
        found = []
        for path in self._written or ():
            entry = self.known[path]
            if entry.kind == "blob" and (path in tops or any(p in tops for p in _folders_of(path))):
                found.append(entry)
        return found

    def _writes(self, path: str) -> bool:
        """Whether git writes an entry at or under ``path`` ("" for the root; listed whole,
        as every path wanted is)."""
        if self._written is None:
            self._written = sorted(
                e.path
                for e in self.known.values()
                if e.kind != "tree" and refused_part(e.path, link=e.mode == _LINK) is None
            )
        written = self._written
        if not path:
            return bool(written)
        at = bisect.bisect_left(written, path)
        if at < len(written) and written[at] == path:
            return True
        # The paths under ``path`` sort together, from ``path/`` on.
        at = bisect.bisect_left(written, f"{path}/")
        return at < len(written) and written[at].startswith(f"{path}/")

    def _follow(self, starts: Sequence[tuple[str, str]]) -> list[TreeEntry]:
        """Where each ``(folder, target)`` leads (see ``_advance``), added (``_add``); the
        links in what was added. The walks go on together: each step reads the targets of the
        links all of them reached in one git call, however many walks (at most ``max_links``
        and one, so one read stays under what ``read_blobs`` takes)."""
        walks = [_Walk(folder.split("/") if folder else [], target) for folder, target in starts]
        found: list[TreeEntry] = []
        while walks:
            waiting = []
            for walk in walks:
                if self._advance(walk):
                    found += self._add(walk.result)
                else:
                    waiting.append(walk)
            self._read_targets([walk.link for walk in waiting if walk.link is not None])
            walks = waiting
        return found

    def _add(self, path: str | None) -> list[TreeEntry]:
        """List the tree (or file) at ``path``, unless it already was; the links in it."""
        if path is None or any(_within(path, top) for top in self.listed):
            return []
        self.listed.append(path)
        self.wanted.add(path)
        links = []
        with contextlib.closing(ls_tree(self.repo, self.sha, [path], recursive=True)) as listing:
            for entry in _once_each(listing):
                self._listed(entry)
                self._count(entry)
                if (part := refused_part(entry.path, link=entry.mode == _LINK)) is not None:
                    self.refused.add(part)
                if entry.mode == _LINK:
                    links.append(entry)
        return links

    def _listed(self, entry: TreeEntry) -> None:
        """An entry of a listing (``_once_each``), counted and known. Two listings may both
        hold a path (a folder's, and one of a path in it), and then as the same entry."""
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise CheckoutRefusedError(f"more than {self.limits.max_entries} entries to list")
        self.known[entry.path] = entry

    def _count(self, entry: TreeEntry) -> None:
        # A path counted already was in another listing, as this same entry (``_once_each``).
        if entry.kind != "blob" or entry.path in self.counted:
            return
        self.counted.add(entry.path)
        self.total += entry.size
        limits = self.limits
        if entry.size > limits.max_file:
            raise CheckoutRefusedError(
                f"{entry.path!r} is {entry.size} bytes, over the {limits.max_file} a checked-out"
                " file may have"
            )
        if len(self.counted) > limits.max_files:
            raise CheckoutRefusedError(f"more than {limits.max_files} files to check out")
        if self.total > limits.max_total:
            raise CheckoutRefusedError(f"more than {limits.max_total} bytes to check out")

    def _advance(self, walk: _Walk) -> bool:
        """Walk on to where ``walk`` leads in the commit, as the file system will resolve it
        once checked out (the links on the way are wanted): True once known (``walk.result``;
        None if it leads out of the commit, to nothing, or round in circles), False at a link
        whose target is not read yet (``walk.link``)."""
        if walk.absolute:
            return walk.end(None)  # out of the commit
        while True:
            if walk.link is not None:
                target = self.targets.get(walk.link.oid)
                if target is None:
                    return False
                walk.link = None
                if target.startswith("/"):
                    return walk.end(None)  # out of the commit
                walk.names += reversed(target.split("/"))
            if not walk.names:
                return walk.end("/".join(walk.here))
            name = walk.names.pop()
            if name in ("", "."):
                continue
            if name == "..":
                if not walk.here:
                    return walk.end(None)
                walk.here.pop()
                continue
            entry = self._entry("/".join([*walk.here, name]))
            if entry is None or entry.kind == "commit":
                return walk.end(None)
            if entry.mode == _LINK:
                walk.hops += 1
                if walk.hops > _MAX_HOPS:
                    return walk.end(None)
                self._passed(entry)
                walk.link = entry
                continue
            if entry.kind != "tree" and any(part not in ("", ".") for part in walk.names):
                return walk.end(None)  # a file is no folder
            walk.here.append(name)

    def _passed(self, link: TreeEntry) -> None:
        """A link on the way of a path: wanted, and counted against ``max_hops``."""
        self.hops += 1
        if self.hops > self.limits.max_hops:
            raise CheckoutRefusedError(
                f"the symbolic links to follow pass more than {self.limits.max_hops} links"
                " on their way"
            )
        self.wanted.add(link.path)
        self._count(link)

    def _entry(self, path: str) -> TreeEntry | None:
        """The entry at ``path``: from a listing already made, or its folder's, listed now."""
        if path in self.known:
            return self.known[path]
        folder = path.rpartition("/")[0]
        if folder not in self.folders and not any(_within(folder, t) for t in self.listed):
            self.folders.add(folder)
            # One listing per folder, and as many folders as links: a commit must not make
            # its links cost a git call per step for ever.
            if len(self.folders) > self.limits.max_links:
                raise CheckoutRefusedError(
                    f"symbolic links lead through more than {self.limits.max_links} folders"
                )
            paths = [f"{folder}/" if folder else ""]
            with contextlib.closing(
                ls_tree(self.repo, self.sha, paths, recursive=False)
            ) as listing:
                for entry in _once_each(listing, folder):
                    self._listed(entry)
        return self.known.get(path)

    def _read_targets(self, links: list[TreeEntry]) -> None:
        # A target longer than a file system takes is a link to nothing, and is not read: git
        # takes a link of any size (15 of 16 MiB each travel as a few KiB of zeros), and each
        # would be read whole into memory here.
        for link in links:
            if link.size > MAX_PATH:
                self.targets.setdefault(link.oid, "/")
        unread = {link.oid for link in links if link.oid not in self.targets}
        for oid, text in read_blobs(self.repo, unread).items():
            self.targets[oid] = (
                "/" if len(text) > MAX_PATH else text.decode("utf-8", "surrogateescape")
            )
        for oid in unread - self.targets.keys():
            self.targets[oid] = "/"


class _Walk:
    """A path being resolved (``_CheckoutPlan._advance``): the folder reached, the names left
    (last first: each is popped off the end, however long the list grows), the links passed,
    and the one whose target it waits for."""

    def __init__(self, here: list[str], target: str) -> None:
        self.here = here
        self.names = target.split("/")[::-1]
        self.hops = 0
        self.link: TreeEntry | None = None
        self.result: str | None = None
        self.absolute = target.startswith("/")  # out of the commit

    def end(self, result: str | None) -> bool:
        self.result = result
        return True


def _once_each(
    listing: Iterable[TreeEntry], folder: str | None = None
) -> Generator[TreeEntry, None, None]:
    """The entries of one listing (of ``folder`` alone, or recursive when None);
    CheckoutRefusedError at a path listed again, whatever the two entries are, or one in no
    folder of the listing. git lists each path of a sound commit once (with ``-t``, the folders
    on the way too, each before what it holds). A tree that names one twice is malformed (git
    fsck's duplicateEntries), yet receive and fetch take it unchecked by default; the plan would
    count one entry and ``git checkout`` write the other: a task file of 100 bytes counted, a
    GiB written. So is one whose name holds a "/" (fsck's fullPathname), the one way a path's
    folder is not listed before it: beside a file ``a.yaml``, ``git checkout`` writes
    ``a.yaml/x.yaml`` and not the file (exit 0: the file's task was removed, no error)."""
    seen: dict[str, str] = {}  # path -> kind
    for entry in listing:
        if entry.path in seen:
            raise CheckoutRefusedError(
                f"{entry.path!r} is listed twice in one of its trees (a malformed tree, which"
                " git fsck refuses)"
            )
        parent = entry.path.rpartition("/")[0]
        if parent != folder and (folder is not None or (parent and seen.get(parent) != "tree")):
            if parent in seen:
                raise CheckoutRefusedError(
                    f"{parent!r} is both a file and a folder in one of its trees (a malformed"
                    ' tree: a name with a "/")'
                )
            raise CheckoutRefusedError(
                f'{entry.path!r} is a name with a "/" in one of its trees (a malformed tree)'
            )
        seen[entry.path] = entry.kind
        yield entry


def _folders_of(path: str) -> Generator[str, None, None]:
    """The folders ``path`` is in, from the root ("") down."""
    yield ""
    at = path.find("/")
    while at >= 0:
        yield path[:at]
        at = path.find("/", at + 1)


def _within(path: str, top: str) -> bool:
    return not top or path == top or path.startswith(top + "/")


def ls_tree(
    repo: GitRepo, sha: str, paths: Sequence[str], *, recursive: bool
) -> Generator[TreeEntry, None, None]:
    """The entries of ``sha`` at ``paths`` (every one under them when ``recursive``, trees
    included; the whole commit for ``[""]``), as git lists them: close the iterator to stop git.
    Names are taken literally. CheckoutRefusedError for a path over ``MAX_PATH`` bytes."""
    args = ["--literal-pathspecs", "ls-tree", "-z", "-l", "--full-tree"]
    if recursive:
        args += ["-r", "-t"]
    records = repo.run_records(
        [*args, sha, "--", *(p for p in paths if p)], separator=b"\0", max_record=_MAX_RECORD
    )
    with contextlib.closing(records):
        try:
            for record in records:
                meta, tab, path = record.decode("utf-8", "surrogateescape").partition("\t")
                fields = meta.split()
                if not tab or len(fields) != 4:
                    continue
                mode, kind, oid, size = fields
                yield TreeEntry(path, mode, kind, oid, int(size) if size.isdigit() else 0)
        except RecordTooLongError:
            # No file system opens it (ENAMETOOLONG): a checkout of it could only fail.
            raise CheckoutRefusedError(f"a path of more than {MAX_PATH} bytes") from None


def read_blobs(repo: GitRepo, oids: Collection[str]) -> dict[str, bytes]:
    """The content of each blob (link targets: small), in one ``git cat-file --batch``."""
    if not oids:
        return {}
    request = "".join(f"{oid}\n" for oid in oids).encode()
    out = repo.run_bytes(["cat-file", "--batch"], input=request)
    blobs, at = {}, 0
    while at < len(out):
        end = out.index(b"\n", at)
        header = out[at:end].decode().split()
        at = end + 1
        if len(header) == 3:  # "<oid> <type> <size>"; "<oid> missing" has two
            size = int(header[2])
            blobs[header[0]] = out[at : at + size]
            at += size + 1
    return blobs
