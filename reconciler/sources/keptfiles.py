"""The last good definitions of broken files, kept in crontask's state directory so that a
restart does not drop them (``DirectorySource``: "a broken file never stops or changes the
tasks it defined").

In memory a broken file keeps its last good definitions (``FileState.good``); a new process
has only the broken text. So, while a file of a folder source that had a good reading is
broken (its tasks kept with the error, or its change refused for room), its last good
definitions are written to ``<state_dir>/kept-files/``, beside the source's
``refused-files.json``; at start, a file that reads broken (its text the same), with no good
reading of its own, takes them back from there, and its tasks stay in force with the error,
as they were before the restart. The git source keeps them too, beside its own record
(``<state_dir>/git/<key>/``): its root is read through ``current``, the same path in every
revision, and a restart reads the revision in force again, the broken text with it. Without a
state directory (``crontask validate``, ``plan``) nothing is kept.

- What is kept is each definition's document (what the file set, defaults left out; not
  the file's text, which is gone once the file is broken), its line and column, its hash and
  the revision it was read at. Taken back, each document is validated as a file's are
  (``documents.plain_definitions``), and must hash as it did: a copy that does not is ignored,
  deleted and logged.
- One file per broken file, named by a hash of its root (absolute) and its path relative to
  that root; both are recorded inside, and must match: a hash collision, or another root,
  never seeds the wrong file. So is a hash of the broken file's bytes: a file whose text
  changed while crontask was not running (fixed and broken again, deleted and written anew
  months later) is not given definitions kept for another text, and its copy is deleted; one
  rewritten with the same text (``touch``, a restored backup, a ConfigMap projected anew for a
  new pod) is. A file whose bytes cannot be read to compare is not given them either. Each
  is at most ``2 * max_file_size + 64 KiB`` (a larger one is not kept, and the log says so);
  written atomically (temporary file, fsync, rename), 0600.
- Deleted when its file is good again or is deleted; at start, those of a root no longer
  given (or now read by another root given inside it), of a file no longer there (its root
  being there), and anything else in the folder are deleted. So there are at most as many as
  there are broken files, plus those under a root that is missing at the moment.
- Taken back definitions count toward ``max_tasks`` as a file's do (``taskbound``). A file
  refused for room at a restart is not given its kept definitions back: it is refused with
  none, as before; its copy stays until the file applies.
- The folder is crontask's own, under the state directory (``statedir``): it and each kept
  file must be owned by this user and not writable by others or a foreign group, as
  ``statedir`` requires of its own, and a kept file must be a regular file (never a link). A
  folder that is not is warned of once, and nothing is kept nor taken back (as before this
  existed); a file that is not is ignored and deleted.
- A file once read under a place a scan does not read (its folder turned into a submodule or
  into a link not entered, a folder that cannot be listed, its root gone: ``unread``), or
  gone from a root that yields no file any more (``guard_empty``), keeps its tasks, and its
  last good definitions are kept as a broken file's are, with no text to compare (there is
  none); at start they are in force again, the file's as they were, and the first scan
  decides: still under a place not read (or its root still empty), they stay; the place
  back, the file is read again (its copy deleted once it is good, or kept as a broken
  file's), or is gone and its tasks with it. A record of such a file is not deleted at start
  for its file not being there: it never is.
- Not kept: tasks adrift (``sources.adrift``: a task whose file went while a broken document
  of another file names it) live in memory only, and a restart drops them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from reconciler import statedir
from reconciler.core.desired import Definition
from reconciler.sources.documents import PlainText, plain_definitions
from reconciler.sources.filestate import FileState, Signature
from reconciler.sources.rootpaths import closest_root
from reconciler.sources.rootstate import is_within

log = logging.getLogger("crontask.sources")

FOLDER = "kept-files"
_VERSION = 1
_SUFFIX = ".json"
_SLACK = 64 * 1024  # the record's own keys, on top of what its documents take
_CHUNK = 64 * 1024  # a broken file's bytes are hashed so much at a time
# The signature of a file taken back from a held record: never a real one, nor UNKNOWN's.
HELD: Signature = (-2, -2, -2, -2)


def kept_files(
    record: Path | None, roots: Sequence[Path], kind: str, max_file_size: int
) -> KeptFiles | None:
    """The kept files beside a folder or git source's refused record (``DirectorySource(
    refused_record=)``: given by ``crontask run`` only, in its state directory); None without
    one."""
    if record is None:
        return None
    return KeptFiles(record.parent / FOLDER, roots, kind, 2 * max_file_size + _SLACK)


class KeptFiles:
    def __init__(self, folder: Path, roots: Sequence[Path], kind: str, limit: int) -> None:
        self.folder = folder
        self.roots = list(roots)
        self.kind = kind
        self.limit = limit
        self._usable = True
        # The files with a kept copy, with the definitions it holds and the signature of the
        # broken file it was kept for (None: kept before this process started, not taken back
        # yet): a copy is written again when either changes.
        self._kept: dict[Path, tuple[tuple[Definition, ...], Signature] | None] = {}
        self._held: set[Path] = set()  # those whose copy is of a file under a place not read
        self._warned = False  # the folder could not be made (a full disk): said once
        self._prune()

    def seeded(self, path: Path, state: FileState, shown: str) -> FileState:
        """``state`` (of a file read for the first time) with the definitions kept for it if
        it is broken with none of its own; ``shown``: the path as its Locations show it."""
        if state.good is not None or not state.errors or path not in self._kept:
            return state
        record = self._load(path)
        now = self._text_hash(path) if record is not None else None
        if record is not None and now is None:  # not known to be the same; maybe later
            log.info(
                "a broken file cannot be read to compare with the one its definitions were "
                "kept for: they are not taken back now",
                extra={"fields": {"file": shown}},
            )
            return state
        if record is not None and record.get("text") != now:
            log.info(
                "a broken file changed while crontask was not running: the definitions kept "
                "for it are not taken back",
                extra={"fields": {"file": shown}},
            )
            self._forget(path)
            return state
        good = None if record is None else _definitions(record, shown, self.kind)
        if good is None:
            log.warning(
                "the kept definitions of a broken file are not usable: ignored and deleted",
                extra={"fields": {"file": shown, "kept": str(self._name(path))}},
            )
            self._forget(path)
            return state
        log.info(
            "a broken file keeps the tasks it defined before the restart",
            extra={"fields": {"file": shown, "tasks": len(good)}},
        )
        self._kept[path] = (good, state.signature)
        return replace(state, good=good)

    def stored(self, path: Path, state: FileState | None) -> None:
        """``state`` is what ``path`` now holds (None: gone): keep its definitions while it
        is broken, forget them once it is good again or gone."""
        if state is None or not state.errors:
            self._forget(path)
        elif state.good is not None and self._kept.get(path) != (state.good, state.signature):
            self._keep(path, state.good, state.signature)  # the text may have changed too

    def holding(self, path: Path, state: FileState) -> None:
        """``path`` lies under a place a scan does not read, and ``state`` is what it held:
        keep its last good definitions, with no text (see the module docstring)."""
        if not state.good:  # no task to keep
            return
        if path in self._held and self._kept.get(path) == (state.good, state.signature):
            return  # written already: a resync writes nothing
        if self._write(path, state.good, state.signature, None):
            self._held.add(path)

    def held(self, shown: Callable[[Path], str]) -> dict[Path, FileState]:
        """At start: the files under a place not read before the restart, each with the
        definitions kept for it; ``shown``: a path as its Locations show it."""
        found: dict[Path, FileState] = {}
        for path in sorted(self._held):
            record = self._load(path)
            good = None if record is None else _definitions(record, shown(path), self.kind)
            if not good:  # none is ever written (holding)
                log.warning(
                    "the kept definitions of a file not read are not usable: ignored and deleted",
                    extra={"fields": {"file": shown(path), "kept": str(self._name(path))}},
                )
                self._forget(path)
                continue
            self._kept[path] = (good, HELD)
            found[path] = FileState(HELD, good, (), revision=good[0].location.revision)
        tasks = sum(len(state.good or ()) for state in found.values())
        if found:
            log.info(
                "the tasks kept of files not read (under a place not read, or of a path "
                "emptied) are in force again after the restart",
                extra={"fields": {"files": len(found), "tasks": tasks}},
            )
        return found

    # -- details ---------------------------------------------------------------------------

    def _place(self, path: Path) -> tuple[str, str] | None:
        """The root that reads ``path`` (absolute) and ``path`` relative to it."""
        root = closest_root(self.roots, path)
        if root is None:
            return None
        relative = "." if path == root else str(path.relative_to(root))
        return str(root.absolute()), relative

    def _text_hash(self, path: Path) -> str | None:
        return _hash_of(path, closest_root(self.roots, path), self.limit)

    def _name(self, path: Path) -> Path:
        place = self._place(path) or ("", str(path))
        return self.folder / _hashed(*place)

    def _keep(self, path: Path, good: tuple[Definition, ...], signature: Signature) -> None:
        text = self._text_hash(path)
        if text is None:  # a copy no start could match with its file
            self._forget(path)
        elif self._write(path, good, signature, text):
            self._held.discard(path)

    def _write(
        self, path: Path, good: tuple[Definition, ...], signature: Signature, text: str | None
    ) -> bool:
        """Whether ``good`` is now kept for ``path``, for its broken ``text`` (None: held)."""
        place = self._place(path)
        if place is None or not self._folder_ok(make=True):
            return False
        record = {
            "version": _VERSION,
            "root": place[0],
            "path": place[1],
            "revision": good[0].location.revision if good else None,
            # The broken text it is kept for: another text there by the next start (fixed and
            # broken again, deleted and written anew) is not given these definitions.
            "text": text,
            "held": text is None,
            "documents": [_document(d) for d in good],
        }
        # Not ensure_ascii: an "é" would take 6 bytes, and a file near --max-file-size be
        # too large to keep.
        data = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
        if len(data) > self.limit:
            log.warning(
                "the definitions of a broken file are too large to keep across a restart",
                extra={"fields": {"file": str(path), "bytes": len(data), "limit": self.limit}},
            )
            self._forget(path)
            return False
        try:
            _write(self.folder / _hashed(*place), data)
        except OSError as err:
            log.warning(
                "the definitions of a broken file are not kept across a restart",
                extra={"fields": {"file": str(path), "error": err.strerror or str(err)}},
            )
            return False
        self._kept[path] = (good, signature)
        return True

    def _forget(self, path: Path) -> None:
        self._held.discard(path)
        if self._kept.pop(path, False) is False:
            return
        try:
            os.unlink(self._name(path))
        except FileNotFoundError:
            pass
        except OSError as err:  # the next start takes it back if the file is broken then
            log.warning(
                "a kept copy of a file's definitions could not be deleted",
                extra={"fields": {"file": str(path), "error": err.strerror or str(err)}},
            )

    def _load(self, path: Path) -> dict[str, Any] | None:
        """The record kept for ``path``; None if there is none, or it is not for ``path``."""
        place = self._place(path)
        if place is None or not self._folder_ok(make=False):
            return None
        record = self._record(_hashed(*place))
        if record is None or (record.get("root"), record.get("path")) != place:
            return None
        return record

    def _record(self, name: str) -> dict[str, Any] | None:
        """The record in the file ``name`` of the folder, read as the module says: None if it
        is not a regular file of ours that others may not write, is too large, or is not a
        record of this version."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self.folder / name, flags)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or _not_ours(st) is not None:
                return None
            with os.fdopen(fd, "rb", closefd=False) as file:
                data = file.read(self.limit + 1)
            record = json.loads(data) if len(data) <= self.limit else None
        except (OSError, ValueError, RecursionError):
            return None
        finally:
            os.close(fd)
        if not isinstance(record, dict) or record.get("version") != _VERSION:
            return None
        return record

    def _prune(self) -> None:
        """At start: note the copies of files still under a root given, delete the rest."""
        if not os.path.lexists(self.folder) or not self._folder_ok(make=False):
            return
        try:
            names = os.listdir(self.folder)
        except OSError:
            return
        dropped = 0
        for name in names:
            path, held = self._owner(name)
            if path is not None:
                self._kept[path] = None
                if held:
                    self._held.add(path)
                continue
            dropped += 1
            with contextlib.suppress(OSError):
                os.unlink(self.folder / name)
        if dropped:
            log.info(
                "kept definitions of broken files dropped at start: their file or root is gone, "
                "or the copy is not usable",
                extra={"fields": {"path": str(self.folder), "dropped": dropped}},
            )

    def _owner(self, name: str) -> tuple[Path | None, bool]:
        """The file the kept copy ``name`` is for, if it is still to be kept, and whether it
        is of a file under a place not read (then the first scan decides: see ``held``)."""
        record = self._record(name)
        root, relative = (record.get("root"), record.get("path")) if record else (None, None)
        if not isinstance(root, str) or not isinstance(relative, str):
            return None, False
        held = record.get("held") is True if record else False
        given = [r for r in self.roots if str(r.absolute()) == root]
        if not given or name != _hashed(root, relative):
            return None, False  # its root is not given any more (or the name is not its own)
        path = given[0] / relative if relative != "." else given[0]  # as the source names it
        if closest_root(self.roots, path) != given[0]:
            return None, False  # another root given inside it reads the file now
        if not held and os.path.lexists(given[0]) and not os.path.lexists(path):
            return None, False  # deleted while crontask was not running
        return path, held

    def _folder_ok(self, *, make: bool) -> bool:
        """Whether the folder may be used (made 0700 first if ``make``); warned of once."""
        if not self._usable:
            return False
        try:
            if make and not os.path.lexists(self.folder):
                statedir.make_dirs(self.folder)
            st = os.lstat(self.folder)
        except OSError as err:  # a full disk, say: tried again at the next broken file
            if not self._warned:
                self._warned = True
                log.warning(
                    "the folder of broken files' kept definitions cannot be made now",
                    extra={"fields": {"path": str(self.folder), "error": err.strerror or str(err)}},
                )
            return False
        why = _not_ours(st) if stat.S_ISDIR(st.st_mode) else "it is not a folder"
        if why is None:
            return True
        self._usable = False
        log.warning(
            "the folder of broken files' kept definitions is not used: a restart drops the "
            "tasks of a broken file",
            extra={"fields": {"path": str(self.folder), "error": why}},
        )
        return False


def _not_ours(st: os.stat_result) -> str | None:
    """Why a kept file or its folder is not trusted, as ``statedir`` trusts its own."""
    if st.st_uid != os.geteuid():
        return f"it is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
    return statedir.group_or_others_may_write(st)


def _hashed(root: str, relative: str) -> str:
    key = f"{root}\0{relative}".encode("utf-8", "surrogateescape")
    return hashlib.sha256(key).hexdigest()[:32] + _SUFFIX


def _document(definition: Definition) -> dict[str, Any]:
    location = definition.location
    return {
        "line": location.line,
        "column": location.column,
        "hash": definition.hash,
        # What the file set, not the defaults: about the size of the text it came from.
        "task": definition.task.model_dump(mode="json", by_alias=True, exclude_unset=True),
    }


def _hash_of(path: Path, root: Path | None, limit: int) -> str | None:
    """A hash of the bytes of the regular file ``path`` leads to, inside ``root`` (its first
    ``limit``, read in chunks, and its size: a file too large to read is one too); None if it
    is no such file or cannot be read (nothing is then known to be the same). As the reader,
    it opens no FIFO nor device, and no file a link leads to out of the folder."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or root is None:
            return None
        if not is_within(Path(os.path.realpath(path)), Path(os.path.realpath(root))):
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    digest = hashlib.sha256()
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
            return None  # replaced between the look and the open
        left = limit
        while left > 0 and (chunk := os.read(fd, min(left, _CHUNK))):
            digest.update(chunk)
            left -= len(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    digest.update(str(opened.st_size).encode())
    return digest.hexdigest()


def _definitions(record: dict[str, Any], shown: str, kind: str) -> tuple[Definition, ...] | None:
    """The definitions of a kept record, validated as a file's are; None if one does not
    validate, or does not hash as it did when kept."""
    documents, revision = record.get("documents"), record.get("revision")
    if not isinstance(documents, list) or not (revision is None or isinstance(revision, str)):
        return None
    plain: list[tuple[Any, int, int]] = []
    for document in documents:
        if not isinstance(document, dict):
            return None
        line, column = document.get("line"), document.get("column")
        if not isinstance(line, int) or not isinstance(column, int):
            return None
        plain.append((document.get("task"), line, column))
    parsed = plain_definitions(PlainText(plain, 0), shown, source=kind, revision=revision)
    if parsed is None:
        return None
    hashes = [document.get("hash") for document in documents]
    if [d.hash for d in parsed.definitions] != hashes:
        return None
    return tuple(parsed.definitions)


def _write(target: Path, data: bytes) -> None:
    """``data`` at ``target``, atomically: a crash leaves the old copy or the new one."""
    part = target.with_name(f".{target.name}.{os.getpid()}.part")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(part, flags, statedir.PRIVATE_FILE)
    try:
        try:
            os.fchmod(fd, statedir.PRIVATE_FILE)  # a crash's leftover may have another mode
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(part, target)
    except OSError:  # a full disk: no partial copy left taking the room
        with contextlib.suppress(OSError):
            os.unlink(part)
        raise
    folder = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
