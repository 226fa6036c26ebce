"""The directory source: ``*.yaml``/``*.yml`` files under one or more paths.

Rules users rely on:

- Every ``*.yaml``/``*.yml`` file under each path, recursively; hidden files and folders
  (``.git``, the ``..data`` folders of a Kubernetes ConfigMap mount) are skipped, symlinked
  files are followed, symlinked folders are not. A folder more than ``MAX_FOLDER_DEPTH`` levels
  below its path is not read: it is a definition error of that folder. A folder that cannot
  be listed (permissions, an I/O error) is an error too, and the tasks of its files stay as
  they were until it can be; so is a path of more than ``MAX_PATH_FILES`` task files. A path
  may also name a single file. The walk is ``walk``'s. A path given under another one
  (through a link, maybe) is a root of its own (``rootpaths``).
- A file is applied whole or not at all. A file that fails to parse or validate never removes or
  changes the tasks it defined before: they keep running on their last good definition, and the
  error is reported with ``file:line:col``, across a restart too (``keptfiles``). Fixing the
  file applies it. So does a task whose file went while a broken document of another file
  names it (``sources.adrift``).
- Only files that changed are re-read, as their signatures tell (``filestate``), so a periodic
  full refresh is cheap and heals missed events. A file that cannot be looked at (a folder on
  its way lost its search permission) is not a file gone: it is an error, and its tasks stay. A
  file whose name is not UTF-8 is an error of its own, not read (the watcher cannot report it).
- Watch events (``watch``) name files to re-read; those that say more (``filehints``: a
  folder, a link) make the refresh a full one. Under a path past ``MAX_PATH_FILES`` they do
  nothing: the resync, a full pass anyway, is what sees it back within the bound.
- A path that disappears (an unmounted volume, a wrong path) is an error; the tasks read from it
  stay in force until it comes back. With ``guard_empty`` (``crontask run`` without
  ``--allow-empty``), so does a path that still exists but suddenly holds no file at all, however
  the change arrives (a resync, or watch events file by file): each path is guarded on its own,
  whatever other paths and sources hold.
- Paths are never resolved: a root that is (or runs through) a symlink swapped atomically to a new
  tree — git-sync's ``--link``, the git source's ``current`` — is read through the link, so file
  paths, and with them each file's last good definitions, stay the same across the swaps.
- Reading is bounded (see ``filereading``, ``reading`` and ``limits``): only regular files of
  at most ``max_file_size`` bytes, and a symlinked file only if it resolves inside its root as
  resolved at this refresh (``confine_to``, by default the root path it was found under);
  anything else is a definition error of that path, which keeps its last good definitions like
  any other. A root that leads out of ``confine_to`` through a link (the git source's
  ``--git-path``) is not read at all: like a path that disappears, it is an error and its tasks
  stay.
- Optional, for sources built on this one (the git source): ``revision`` is stamped on every
  Location read while it is set, and a file read at another revision is read again even if its
  signature looks unchanged (inodes of a deleted tree are reused by the next one);
  ``relative_to`` makes Location paths relative to that folder (the repository root) instead of
  the state directory the files really live in.
- A source holds at most ``max_tasks`` tasks (``taskbound``): a file whose new version would
  take it past them is refused as a broken file is, and read again once there is room.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from reconciler.aio import ended, first_of
from reconciler.core.desired import Definition, DefinitionError, ErrorKind, Location, SourceKind
from reconciler.sources.adrift import Adrift
from reconciler.sources.base import Notify, Ready, SourceState
from reconciler.sources.filehints import known_path, says_more, too_deep, within_bound
from reconciler.sources.filereading import FileReader
from reconciler.sources.filestate import FileState, signature_of
from reconciler.sources.keptfiles import kept_files
from reconciler.sources.limits import DEFAULT_MAX_FILE_SIZE, DEFAULT_MAX_TASKS
from reconciler.sources.reading import resolved, within
from reconciler.sources.rootpaths import closest_root, inner_roots, not_given
from reconciler.sources.rootstate import (
    GONE_ROOT,
    hold_error,
    is_within,
    leads_within,
    missing,
    yields_nothing,
)
from reconciler.sources.taskbound import RefusedRecord, growth, refused
from reconciler.sources.unread import WALK_ERRORS, links_to_files, under_any
from reconciler.sources.walk import Misnamed, past_bound, task_files
from reconciler.sources.watch import watch_paths


class DirectorySource(FileReader):
    kind: str = SourceKind.FILE
    authoritative = False  # see Source.authoritative

    def __init__(
        self,
        paths: Sequence[Path | str],
        *,
        source: SourceKind = SourceKind.FILE,
        revision: str | None = None,
        relative_to: Path | None = None,
        max_file_size: int = DEFAULT_MAX_FILE_SIZE,
        max_tasks: int = DEFAULT_MAX_TASKS,
        refused_record: Path | None = None,
        confine_to: Path | None = None,
        confine_label: str | None = None,
        guard_empty: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_file_size < 1 or max_tasks < 1:
            raise ValueError("max_file_size and max_tasks must be positive")
        self.kind = source
        self.roots = [Path(p) for p in paths]
        self.max_file_size = max_file_size
        self.max_tasks = max_tasks
        # Files refused for room (see taskbound), in the order read, with what the source held
        # then; the definitions the files hold (all: one key defined twice is held twice).
        self._refused: dict[Path, int] = {}
        self._held = 0
        # Kept across restarts (crontask run); the first rescan reads those files last.
        self._record = RefusedRecord(refused_record) if refused_record else None
        self._last = {Path(p) for p in self._record.load()} if self._record else set()
        keep = kept_files(refused_record, self.roots, self.kind, max_file_size)
        self._keep = None  # set below, once what it held before the restart is in force
        # Where links may lead (see the module docstring), and how messages name it.
        self.confine_to = confine_to
        self.confine_label = confine_label
        self._resolved: dict[Path, str | None] = {}  # root -> its resolved path, this refresh
        # Set by the owner before a refresh: files read from then on carry it in their Locations.
        self.revision = revision
        self.relative_to = relative_to
        self._files: dict[Path, FileState] = {}
        self._paths_of: dict[str, set[Path]] = {}  # task key -> files defining it
        # The files with errors, kept in step with _files: an edit asks for every error, and
        # walking 10 000 files for them was a tenth of an edit's pass at 100 000 tasks.
        self._failing: dict[Path, tuple[DefinitionError, ...]] = {}
        self._root_errors: dict[Path, DefinitionError] = {}
        self._walk_errors: list[DefinitionError] = []  # folders not read, at the last scan
        self.unread: list[Path] = []  # the places not read at the last scan (see scan())
        self.too_many: dict[Path, str] = {}  # those past walk.MAX_PATH_FILES files: the errors
        self.misnamed = Misnamed()  # Backup.YAML: not read, said (walk)
        # A root that suddenly yields no file keeps its tasks unless the user allows an empty
        # set: _holds() decides it once per root and refresh (per file, 6000 files took 40 s).
        self.guard_empty = guard_empty
        self._holds_now: dict[tuple[Path, bool], bool] = {}
        self._ahead: dict[Path, FileState] = {}  # see adopt()
        self._adrift = Adrift(clock)  # tasks a broken document of another file keeps
        # The files under a place not read before a restart: their tasks stay, as they did;
        # the first scan sees whether they still lie under one (keptfiles).
        for path, state in keep.held(self._display).items() if keep else ():
            self._store(path, None, state)
        self._keep = keep

    # -- the Source protocol ---------------------------------------------------------------

    def refresh(self, hints: Collection[str] | None = None) -> set[str]:
        """Re-read changed files; with ``hints`` (paths from a watcher) look only at those.
        A hint naming a root itself (a swapped symlink: git-sync, a ConfigMap) rescans."""
        try:
            changed = self._refresh(hints)
            self._settle(changed)
            # After the settling: the tasks a broken document keeps take room first.
            if retried := self._retry_refused():
                self._settle(retried)
            if self._record is not None:
                self._record.save(self._refused)
            return changed | retried
        finally:
            self._ahead = {}  # only the first refresh takes what was read ahead (adopt())

    def _refresh(self, hints: Collection[str] | None) -> set[str]:
        roots = {str(r.absolute()) for r in self.roots}
        self._resolved = {}  # a root swapped since the last refresh resolves anew
        self._holds_now = {}
        held = [r for r in self.roots if self._is_hold(r)]
        if hints is None:
            return self._rescan()
        hints = within_bound(self.roots, self.too_many, hints)  # past it an event reads nothing
        if any(hint in roots or too_deep(self.roots, Path(hint)) for hint in hints):
            return self._rescan()  # a root swapped; a folder the walk does not enter: report it
        if any(is_within(Path(h), r.absolute()) for h in hints for r in held):
            return self._rescan()  # files again where tasks were held: settle it whole
        folders = functools.cache(lambda: {str(a) for path in self._files for a in path.parents})
        if any(says_more(self.roots, Path(h), folders) for h in hints):
            return self._rescan()  # a folder or a link changed: what is under it, the walk says
        found = [known_path(self.roots, Path(hint)) for hint in hints]
        return {key for path in found if path is not None for key in self._reread(path)}

    def definitions(self) -> list[Definition]:
        found = [d for state in self._files.values() for d in state.in_force()]
        return found + self._adrift.definitions()

    def definitions_of(self, keys: Collection[str]) -> list[Definition]:
        # Each file once: a broken one's ``in_force`` copies all it keeps (per key: N**2).
        wanted = set(keys)
        paths = {path for key in wanted for path in self._paths_of.get(key, ())}
        found = [d for path in paths for d in self._files[path].in_force() if d.key in wanted]
        return found + self._adrift.definitions_of(keys)

    def errors(self) -> list[DefinitionError]:
        found = [e for errors in self._failing.values() for e in errors]
        return found + list(self._root_errors.values()) + self._walk_errors

    def status(self) -> SourceState:
        return SourceState(", ".join(str(r) for r in self.roots))

    async def watch(self, notify: Notify, ready: Ready, stop: asyncio.Event) -> None:
        """The roots watched (``sources.watch``); ready once the OS watches exist, so that the
        first pass, which reads after it, leaves nothing written meanwhile for the resync."""
        armed = asyncio.Event()
        watching = asyncio.ensure_future(watch_paths(self.roots, notify, stop, armed=armed))
        await first_of(armed, ended(watching))
        ready()
        await watching

    # -- details ---------------------------------------------------------------------------

    @property
    def files(self) -> dict[Path, FileState]:
        return dict(self._files)

    def scan(self) -> tuple[list[Path], list[Path]]:
        """The files under the roots, in order, and the places not read whose files keep
        their tasks: the roots that do not exist or lead out of ``confine_to`` through a link,
        the folders that cannot be listed, the links to a folder elsewhere or to nothing, and
        those to a file where files were read (``unread``), the roots past ``MAX_PATH_FILES``
        (each an error of this source until fixed). A folder too deep is one too, never read."""
        present: set[Path] = set()
        missing_roots: list[Path] = []
        too_deep: list[Path] = []
        unlisted: list[Path] = []
        not_entered: list[Path] = []
        named: list[Path] = []
        past: list[Path] = []
        for root in self.roots:
            # Checked first: a link out of the repository says nothing of what it leads to.
            problem = self._outside(root) or missing(root)
            if problem is not None:
                missing_roots.append(root)
                where = Location(self.kind, self._display(root), revision=self.revision)
                error = DefinitionError(where, problem)
                if problem == GONE_ROOT and (kept := self._kept(root)):
                    error = hold_error(where, kept, gone=True)  # say they stay
                self._root_errors[root] = error
                continue
            self._root_errors.pop(root, None)
            linked: list[Path] = []
            present.update(task_files(root, too_deep, unlisted, linked, named, past))
            # A link to a folder of the root shows files read where they are: nothing to say;
            # nor does one given as a root itself (see rootpaths). One that leads elsewhere, or
            # to nothing, is not read: a commit that turned a folder into one must not remove
            # the tasks of its files.
            inside = resolved(root)
            not_entered += [f for f in not_given(self.roots, linked) if not leads_within(f, inside)]
        # And a link to a file where a folder of files read was (see unread): none is removed.
        unread = missing_roots + unlisted + not_entered + past
        to_files = links_to_files(self.roots, self._files, present, unread)
        # Its files stay as they were while it is past: counted once, not per resync (0.5 s).
        was = self.too_many
        self.too_many = {r: was.get(r) or past_bound(kept=self._kept(r) > 0) for r in past}
        found = (too_deep, unlisted, not_entered, to_files)
        said = [(f, why) for why, places in zip(WALK_ERRORS, found, strict=True) for f in places]
        self._walk_errors = [
            DefinitionError(Location(self.kind, self._display(f), revision=self.revision), why)
            for f, why in [*said, *self.too_many.items()]
        ]
        self.unread = unread + to_files
        self.misnamed.saw(named, self._display)
        return sorted(present), list(self.unread)

    def _outside(self, root: Path) -> str | None:
        """Why ``root`` is not read if a link on its way leads out of ``confine_to`` (a commit
        whose ``--git-path`` is a link to ``/usr``); None if it stays inside. A link to
        another folder of the repository is followed, as links to files are."""
        (confine, label), real = self._confinement(root), resolved(root)
        if real is None or confine is None:  # a link that cannot be followed (resolved())
            return "a symbolic link on this path cannot be followed: not read"
        if within(real, confine):
            return None
        return f"a symbolic link on this path leads outside {label}: not read"

    def _rescan(self) -> set[str]:
        changed: set[str] = set()
        present, not_read = self.scan()
        if self._last:  # the files refused before a restart go last, as they went then
            present.sort(key=lambda p: p in self._last)  # stable: in path order otherwise
            self._last = set()
        for path in present:
            changed |= self._reread(path)
        listed, places = set(present), {str(p) for p in not_read}
        for path in [p for p in self._files if p not in listed]:
            if under_any(path, places):  # a set: per file O(depth), not O(places) (see unread)
                # Kept what a vanished root or unlisted folder defined until it is back: across
                # a restart too.
                if self._keep is not None:
                    self._keep.holding(path, self._files[path])
                continue
            changed |= self._reread(path)
        return changed

    def _holds(self, path: Path) -> bool:
        """Whether a file that is gone keeps its tasks: its root yields no file at all now,
        while it defined tasks before. Checked against the disk, not the events, so that an
        unmount or a move seen file by file is held from its first event."""
        if not self.guard_empty:
            return False
        root = closest_root(self.roots, path)  # the root that reads it (see rootpaths)
        if root is None:
            return False
        if (root, path == root) not in self._holds_now:  # a held root stays held this refresh
            self._holds_now[root, path == root] = self._root_holds(root, for_root=path == root)
        return self._holds_now[root, path == root]

    def _root_holds(self, root: Path, *, for_root: bool) -> bool:
        if not yields_nothing(root, for_root=for_root):
            return False
        kept = self._kept(root)
        if kept == 0:
            return False
        where = Location(self.kind, self._display(root), revision=self.revision)
        gone = missing(root) == GONE_ROOT  # in the words a rescan will use (scan())
        self._root_errors[root] = hold_error(where, kept, gone=gone)
        return True

    def _kept(self, root: Path) -> int:
        """The tasks in force from the files under ``root`` and under no other root given
        inside it (a file counted by its closest root: see rootpaths; a key two define, once)."""
        inner = inner_roots(self.roots, root)
        ours = [
            s.good or ()
            for p, s in self._files.items()
            if is_within(p, root) and not any(is_within(p, r) for r in inner)
        ]
        return len({d.key for good in ours for d in good})

    def _is_hold(self, root: Path) -> bool:
        error = self._root_errors.get(root)
        return error is not None and error.kind is ErrorKind.HOLD  # not by its words: any may

    def _settle(self, changed: set[str]) -> None:
        room = self.max_tasks - self._held
        self._adrift.settle(changed, self._paths_of.keys(), room)

    def _holding(self) -> int:
        """The definitions this source holds in force: its files' and those kept adrift."""
        return self._held + self._adrift.count()

    def _retry_refused(self) -> set[str]:
        """Read again the files refused for room if the source holds less than when each was
        refused (see ``taskbound``): their text has not changed, so nothing else would, and
        each is parsed again only after room was made, never at every pass. A file that is not
        there is left to the refresh that sees it go (its root may be gone, or held)."""
        changed: set[str] = set()
        for path, holding in list(self._refused.items()):
            less = self._holding() < holding
            if path in self._refused and less and signature_of(path) is not None:
                changed |= self._reread(path, again=True)
        return changed

    def _reread(self, path: Path, *, again: bool = False) -> set[str]:
        before = self._files.get(path)
        signature = signature_of(path)
        after = None
        if signature is not None:
            if (
                not again
                and before is not None
                and before.signature == signature
                and before.revision == self.revision
            ):
                return set()
            ahead = self._ahead.pop(path, None)
            if (
                ahead is not None
                and before is None
                and ahead.signature == signature
                and ahead.revision == self.revision
            ):
                after = ahead  # read ahead (see adopt()), and unchanged since
            else:
                after = self._read(path, signature, before)
        if after is None:  # gone, or a folder named like a file
            if before is None:
                return set()
            if self._holds(path):  # its root yields nothing: kept, across a restart too
                if self._keep is not None:
                    self._keep.holding(path, before)
                return set()
            self._store(path, before, None)
            return before.keys()
        if before is None and self._keep is not None:  # a broken file kept before a restart
            after = self._keep.seeded(path, after, self._display(path))
        self._store(path, before, self._bounded(path, before, after))
        return after.keys() | (before.keys() if before else set())

    def _bounded(self, path: Path, before: FileState | None, after: FileState) -> FileState:
        """``after``, or ``after`` refused if it would take the source past ``max_tasks``."""
        self._refused.pop(path, None)
        # Tasks kept for a broken document that this file defines again are let go (adrift).
        freed = self._adrift.kept_among(d.key for d in after.good or ())
        adds = growth(before, after) - freed
        holds = self._holding() + adds
        if adds <= 0 or holds <= self.max_tasks:
            return after
        where = Location(self.kind, self._display(path), 1, 1, self.revision)
        self._refused[path] = self._holding()
        return refused(before, after, where, holds, self.max_tasks)

    def _store(self, path: Path, before: FileState | None, after: FileState | None) -> None:
        """Replace what ``path`` holds, keeping the key index in step, and noting the
        definitions no file holds any more (see ``sources.adrift``)."""
        self._held += len(after.good or ()) if after else 0
        self._held -= len(before.good or ()) if before else 0
        for definition in before.good or () if before else ():
            paths = self._paths_of[definition.key]
            paths.discard(path)
            if not paths:
                del self._paths_of[definition.key]
        self._failing.pop(path, None)
        if after is None:
            self._refused.pop(path, None)
            del self._files[path]
        else:
            self._files[path] = after
            if after.errors:
                self._failing[path] = after.errors
            for definition in after.good or ():
                self._paths_of.setdefault(definition.key, set()).add(path)
        self._adrift.failing(path, after.errors if after else ())
        if self._keep is not None:
            self._keep.stored(path, after)
        gone = [d for d in before.good or () if d.key not in self._paths_of] if before else []
        if gone:
            self._adrift.went(gone)

    def adopt(self, ahead: dict[Path, FileState]) -> None:
        """Files read ahead of the first refresh (``sources.ahead``): the next refresh takes each
        one still of the signature it was read with (and not read before); drops the rest."""
        self._ahead = ahead
