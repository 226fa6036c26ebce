"""What ``crontask plan`` keeps of the tasks in force when a new file has errors, as ``run``
keeps them: what the file at the same place defined (under the paired root of ``--against``,
or of the server's own paths), the tasks of places the new scan does not read or of paths that
yield nothing, and, adrift (``sources.adrift``, whose rule it reuses), a task moved to another
file and broken in the same change, while a broken document still names it. Against a server
whose paths do not pair with the new ones, a task of a server file at the place of a broken
file is one that may be kept."""

from __future__ import annotations

import argparse
from pathlib import Path, PurePath

from reconciler.cli.client import RemoteError, request
from reconciler.cli.client_env import default_token
from reconciler.cli.terminal import printable
from reconciler.core.desired import DefinitionError, DesiredState, Location, SourceKind
from reconciler.sources.adrift import Adrift
from reconciler.sources.files import DirectorySource
from reconciler.sources.rootstate import hold_message, yields_nothing
from reconciler.sources.unread import LINK_TO_FILE, links_to_files, under_any


def _server_roots(server: str) -> list[str] | None:
    """The paths the file source of ``server`` reads, as it was given them (what its
    locations start with); None if it does not say (no file source, an older server)."""
    try:
        answer = request(server, default_token(), "GET", "/api/v1/sources")
    except RemoteError:
        return None  # the plan is made without pairing files, as it was before
    items = answer.get("items")
    files = [
        item.get("location")
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict) and item.get("kind") == SourceKind.FILE
    ]
    if len(files) != 1 or not isinstance(files[0], str):
        return None
    return files[0].split(", ")  # the source's status joins them so (``files``)


def kept_on_server(
    args: argparse.Namespace,
    reading: tuple[DesiredState, DirectorySource, list[Path]],
    old: DesiredState,
    files: dict[str, tuple[str, str]],
) -> tuple[set[str], dict[str, Path]]:
    """Of ``old``, what the server ``args.server`` has in force (with the kind and file of
    each task, ``files``), what `run` keeps once it reads what ``reading`` read instead
    (their desired state, source and paths): the tasks it keeps, and those it may keep, each
    with the broken file that may keep it."""
    new, source, paths = reading
    roots = _server_roots(args.server)
    if roots is not None and len(roots) == len(paths):
        kept = _paired_on_server(source, list(zip(paths, roots, strict=True)), files)
        kept |= adrift(new, source, old, kept, args.max_tasks)
        # A task from git has no path of these: its file may be the one broken here.
        files = {key: place for key, place in files.items() if place[0] != SourceKind.FILE}
    else:
        # The server's files cannot be paired with these: the tasks a broken document still
        # names stand for their file on the server, and for every task it defines there.
        kept = _sharing_a_file(old, _named_by_errors(new))
    removed = old.tasks.keys() - new.tasks.keys() - kept
    return kept, _at_broken_places(source, paths, files, removed)


def _named_by_errors(desired: DesiredState) -> set[str]:
    """The tasks a broken document still names."""
    return {error.key for error in desired.errors if error.key}


def adrift(
    new: DesiredState, source: DirectorySource, old: DesiredState, kept: set[str], bound: int
) -> set[str]:
    """The tasks in force in ``old`` that no new file defines, nor is kept for another
    reason (``kept``), which `run` keeps adrift: a broken document of ``source`` still names
    them, and the source has room for them under ``bound`` (``--max-tasks``). The rule is
    ``Adrift``'s, applied to one change: every task went at the same moment."""
    defined = new.tasks.keys() | kept
    went = [old.tasks[key] for key in old.tasks.keys() - defined]
    if not went:
        return set()
    adrift = Adrift(clock=lambda: 0.0)
    for path, state in source.files.items():
        adrift.failing(path, state.errors)
    adrift.went(went)
    holding = sum(len(state.good or ()) for state in source.files.values()) + len(kept)
    adrift.settle({d.key for d in went}, defined, bound - holding)
    return {d.key for d in adrift.definitions()}


def _paired_on_server(
    new: DirectorySource, pairs: list[tuple[Path, str]], files: dict[str, tuple[str, str]]
) -> set[str]:
    """The tasks a server has from the files at the place of the new files that have errors,
    the server's paths paired in order with the new ones (as --against pairs its own)."""
    broken: set[str] = set()
    for path in (path for path, state in new.files.items() if state.errors):
        for new_root, server_root in pairs:
            if (place := _place_under(path, new_root)) is not None:
                broken.add(str(PurePath(server_root) / place) if place else server_root)
                break
    return {
        key for key, (kind, file) in files.items() if kind == SourceKind.FILE and file in broken
    }


def _at_broken_places(
    new: DirectorySource, roots: list[Path], files: dict[str, tuple[str, str]], keys: set[str]
) -> dict[str, Path]:
    """Of ``keys``, those a server has from a file whose path ends as the path of a new file
    that has errors does under its root: a file `run` may keep whole, though which of the
    server's files it is cannot be told. Each with that new file."""
    # Each file's path is matched by its ending: every ending of it made, as it once was, took
    # the square of its length (gigabytes for a server's path 100 000 folders deep). And only
    # the server's files of the same last name are compared: every file against every broken
    # one took 23 s for 10 000 tasks and 2 000 broken files. The buckets hold the same pairs.
    buckets: dict[str, list[tuple[str, str]]] = {}
    for key, file in sorted((key, files[key][1]) for key in keys & files.keys()):
        buckets.setdefault(_last_name(file), []).append((key, file))
    found: dict[str, Path] = {}
    for path in sorted(path for path, state in new.files.items() if state.errors):
        places = {place for root in roots if (place := _place_under(path, root)) is not None}
        for ending in sorted({place or path.name for place in places}):
            found.update(
                (key, path)
                for key, file in buckets.get(_last_name(ending), ())
                if key not in found and _ends_as(file, ending)
            )
    return found


def _last_name(path: str) -> str:
    """What follows the last ``/`` of ``path``: a path and its endings share it."""
    return path.rpartition("/")[2]


def _ends_as(file: str, ending: str) -> bool:
    """Whether the path ``file`` is ``ending`` or ends with it after a ``/``."""
    if not file.endswith(ending):
        return False
    return len(file) == len(ending) or file[-len(ending) - 1] == "/"


def _place_under(path: Path, root: Path) -> str | None:
    """Where ``path`` is under ``root`` ("" for the root itself); None if not under it."""
    if path == root:
        return ""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return None


def _sharing_a_file(state: DesiredState, keys: set[str]) -> set[str]:
    """``keys``, and the tasks of ``state`` defined in the same file as one of them (a
    server's location is ``SERVER FILE:LINE:COLUMN``)."""
    files = {file_of(state.tasks[key].location.path) for key in keys if key in state.tasks}
    return keys | {k for k, d in state.tasks.items() if file_of(d.location.path) in files}


def file_of(place: str) -> str:
    file, line, column = [*place.rsplit(":", 2), "", ""][:3]
    return file if line.isdigit() and column.isdigit() else place


def defined_by_broken_files(
    new: DirectorySource, new_roots: list[Path], old: DirectorySource, old_roots: list[Path]
) -> set[str]:
    """The tasks defined in force by the files that have errors now: the file at the same
    place under the paired root of ``--against`` (roots pair up in order, when there are as
    many), as `run` keeps the last good definitions of a file edited in place."""
    if len(new_roots) != len(old_roots):
        return set()
    in_force = old.files
    keys: set[str] = set()
    for path, state in new.files.items():
        if not state.errors:
            continue
        for new_root, old_root in zip(new_roots, old_roots, strict=True):
            twin = old_root if path == new_root else _under(path, new_root, old_root)
            before = in_force.get(twin) if twin is not None else None
            if before is not None:
                keys.update(d.key for d in before.good or ())
                break
    return keys


def kept_for_places(
    new: DirectorySource,
    pairs: list[tuple[Path, Path]],
    old: DirectorySource,
    removed: set[str],
    allow_empty: bool,
) -> tuple[set[str], set[str], list[str]]:
    """Which of the ``removed`` tasks `run` keeps, as the old files that defined them are gone
    from the new paths (paired in order with the roots of --against) where it cannot tell
    they went: those of files under a place the new scan does not read (a folder that cannot
    be listed, a link to a folder elsewhere), and, unless ``allow_empty``, those of a path
    that yields no file now (see ``files``' guard_empty), with the error `run` reports for
    each such path."""
    unread: set[str] = set()
    held: set[str] = set()
    problems: list[str] = []
    for new_root, old_root in pairs:
        twins = (_under(place, new_root, old_root) for place in new.unread)
        places = {str(place) for place in twins if place is not None}
        # A folder of old files now a link to a file: `run` finds it among the files it read
        # before (sources.unread); a new source has read none, so it is looked for here.
        for link in _links_to_files(new, new_root, old, old_root):
            places.add(str(_under(link, new_root, old_root)))
            where = Location(SourceKind.FILE, str(link))
            problems.append(printable(str(DefinitionError(where, LINK_TO_FILE))))
        empty: dict[bool, bool] = {}  # per "the root itself": whether it yields nothing
        count = 0
        for path, state in old.files.items():
            twin = _under(path, old_root, new_root)
            if not state.good or twin is None or twin in new.files:
                continue
            keys = {d.key for d in state.good} & removed
            if not keys:
                continue
            if under_any(path, places):  # not each place in turn: many are not read
                unread |= keys
                continue
            itself = twin == new_root
            if allow_empty:
                continue
            if itself not in empty:
                empty[itself] = yields_nothing(new_root, for_root=itself)
            if empty[itself]:
                held |= keys
                count += len(keys)
        if count:
            where = Location(SourceKind.FILE, str(new_root))
            problems.append(printable(str(DefinitionError(where, hold_message(count, None)))))
    return unread, held, problems


def _links_to_files(
    new: DirectorySource, new_root: Path, old: DirectorySource, old_root: Path
) -> list[Path]:
    """The links to no folder under ``new_root`` where a folder of the old files under
    ``old_root`` was (``sources.unread.links_to_files``), not under a place already unread."""
    twins = (_under(path, old_root, new_root) for path in old.files)
    return links_to_files([new_root], [t for t in twins if t is not None], new.files, new.unread)


def _under(path: Path, root: Path, other_root: Path) -> Path | None:
    """``path``, a file under ``root``, at the same place under ``other_root``."""
    try:
        return other_root / path.relative_to(root)
    except ValueError:
        return None
