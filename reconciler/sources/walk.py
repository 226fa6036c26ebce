"""The walk of a task folder: which files under a path are task files, in what order.

Every ``*.yaml``/``*.yml`` file, recursively; hidden files and folders (``.git``, the ``..data``
folders of a Kubernetes ConfigMap mount) are skipped, symlinked files are yielded (reading
decides whether they may be followed), symlinked folders are not entered. The walk is a loop
bounded in depth, not recursion: a commit can nest folders past Python's recursion limit.
No reading: ``files.DirectorySource`` reads what this finds, and the file watch (``watch``)
watches the folders it enters.

The ending is case-sensitive, as kubectl's is: ``Backup.YAML`` is not read (a repository may
hold such files on purpose). Its author likely meant a task file, though, and one not read in
silence is a commit that does nothing: the walk finds them (``misnamed``), ``crontask validate``
prints a warning for each, and ``crontask run`` logs one (``Misnamed``: once per file, not at
each rescan). Other endings (``package.json``) and hidden files are not said.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

YAML_SUFFIXES = (".yaml", ".yml")
MISNAMED = "not read: task files end in .yaml or .yml, in lower case"
MISNAMED_LOGGED = 20
# ``crontask run`` logs it; ``validate``, which configures no log, prints it (``survey``)
# rather than have logging's last resort print it bare.
log = logging.getLogger("crontask.sources.walk")
log.addHandler(logging.NullHandler())

# Folders nested deeper than this below a root are not read: task folders are a few levels
# deep, and this is the bound on YAML nesting too (limits.YamlLimits.max_depth).
MAX_FOLDER_DEPTH = 100
# The task files one path may hold, as many files as a git checkout may (gitcheckout's
# MAX_CHECKOUT_FILES): each file found is kept (its signature, what it defined), and 200 000
# empty ones took crontask from 120 to 308 MB. A path past it is not read; its files keep
# their tasks, as under a folder that cannot be listed. The bound is per path: several paths
# may each hold up to it.
MAX_PATH_FILES = 100_000


def past_bound(*, kept: bool) -> str:
    """The error of a path that holds more than ``MAX_PATH_FILES`` task files: ``kept`` if
    tasks of its files were read before (they stay), else (a start) none of them is in force."""
    if kept:
        said = "the tasks of its files are kept"
    else:
        said = "none of its tasks is in force until it is back within the bound"
    return f"holds more than {MAX_PATH_FILES:,} task files (the limit): not read; {said}"


def is_yaml_file(path: Path) -> bool:
    return path.suffix in YAML_SUFFIXES and not path.name.startswith(".")


def misnamed(name: str) -> bool:
    """Whether a file name ends as a task file's in another case (``Backup.YAML``, ``t.Yml``):
    not read, but said (see the module docstring). Hidden files are not."""
    return (
        name.lower().endswith(YAML_SUFFIXES)
        and not name.endswith(YAML_SUFFIXES)
        and not name.startswith(".")
    )


class Misnamed:
    """The files named in another case (``misnamed``) a directory source's last scan found,
    as its Locations show them (``shown``); each logged once while it is there: the scan runs
    at every resync and folder event, and a file that goes and comes back is said again."""

    def __init__(self) -> None:
        self.shown: list[str] = []

    def saw(self, found: list[Path], display: Callable[[Path], str]) -> None:
        shown = list(dict.fromkeys(display(path) for path in found))  # a root in a root
        said = set(self.shown)
        new = [path for path in shown if path not in said]
        # A line a file, MISNAMED_LOGGED at most a scan: a commit of 10 000 is not 10 000 lines.
        for path in new[:MISNAMED_LOGGED]:
            log.warning(MISNAMED, extra={"fields": {"path": path}})
        if len(new) > MISNAMED_LOGGED:
            more = len(new) - MISNAMED_LOGGED
            log.warning(MISNAMED, extra={"fields": {"more_files": more}})
        self.shown = shown


def iter_yaml_files(
    root: Path,
    too_deep: list[Path] | None = None,
    unlisted: list[Path] | None = None,
    linked: list[Path] | None = None,
    named: list[Path] | None = None,
) -> Iterator[Path]:
    """YAML files under ``root`` in a stable order (a folder's files by name, then each of its
    folders by name), skipping hidden entries and not entering linked folders; those named in
    another case (``misnamed``) are added to ``named``, not yielded. A folder more
    than ``MAX_FOLDER_DEPTH`` levels below ``root`` is not entered: it is added to
    ``too_deep``; one that exists but cannot be listed (permissions, an I/O error) is added to
    ``unlisted``; a link to a folder, or a link to nothing not named as a task file (what was a
    folder, maybe), is added to ``linked``. A root that is no folder is yielded as it is (a
    file; or a FIFO or device, which reading refuses)."""
    if not root.is_dir():
        yield root
        return
    for folder, files in iter_folders(root, too_deep, unlisted, linked):
        for name in files:
            candidate = folder / name
            if is_yaml_file(candidate):
                yield candidate
            elif named is not None and misnamed(name) and os.path.exists(candidate):
                named.append(candidate)  # a link to nothing is said as one (``linked``)


def task_files(
    root: Path,
    too_deep: list[Path],
    unlisted: list[Path],
    linked: list[Path],
    named: list[Path],
    too_many: list[Path],
) -> list[Path]:
    """``iter_yaml_files`` of ``root``, at most ``MAX_PATH_FILES`` of them: past that none,
    ``root`` is added to ``too_many``, and nothing found under it to the other lists (what is
    not read is not said). The walk stops at the first file past the bound."""
    found: tuple[list[Path], ...] = ([], [], [], [])
    files: list[Path] = []
    for path in iter_yaml_files(root, *found):
        if len(files) == MAX_PATH_FILES:
            too_many.append(root)
            return []
        files.append(path)
    for kept, more in zip((too_deep, unlisted, linked, named), found, strict=True):
        kept.extend(more)
    return files


def iter_folders(
    root: Path,
    too_deep: list[Path] | None = None,
    unlisted: list[Path] | None = None,
    linked: list[Path] | None = None,
) -> Iterator[tuple[Path, list[str]]]:
    """Each folder the walk enters (``root`` first, then each folder's folders by name), with
    the names of its files; the other arguments as for ``iter_yaml_files``. The file watch
    watches exactly these folders, so that it never follows a link the walk does not."""
    # A stack, not recursion: os.walk recursed, and a commit can nest folders past
    # Python's recursion limit.
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        if depth > MAX_FOLDER_DEPTH:
            if too_deep is not None:
                too_deep.append(folder)
            continue
        try:
            files, folders, links = _entries(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue  # gone since its parent was listed
        except OSError:
            if unlisted is not None:
                unlisted.append(folder)
            continue
        if linked is not None:
            linked.extend(folder / name for name in links)
        yield folder, files
        stack.extend((folder / name, depth + 1) for name in reversed(folders))


def enters(root: Path, folder: Path) -> bool:
    """Whether the walk of ``root`` would enter ``folder``, from its spelling and what it is
    now: ``root`` itself, or a folder below it, neither hidden nor a link, nor too deep (its
    parents are not looked at)."""
    if folder == root:
        return os.path.isdir(folder)
    try:
        relative = folder.relative_to(root)
    except ValueError:
        return False
    if folder.name.startswith(".") or len(relative.parts) > MAX_FOLDER_DEPTH:
        return False
    return os.path.isdir(folder) and not os.path.islink(folder)


def _entries(folder: Path) -> tuple[list[str], list[str], list[str]]:
    """The names in ``folder``, sorted: its files (links to files, dangling links), the
    folders to enter (not hidden, not links), and the links not entered (not hidden: to a
    folder, or to nothing and not named as a task file). OSError if it cannot be listed."""
    files: list[str] = []
    folders: list[str] = []
    links: list[str] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            hidden = entry.name.startswith(".")
            if not is_dir:
                files.append(entry.name)
                dangling = entry.is_symlink() and not os.path.exists(entry.path)
                if dangling and not hidden and not is_yaml_file(Path(entry.name)):
                    links.append(entry.name)
            elif entry.is_symlink():
                if not hidden:
                    links.append(entry.name)
            elif not hidden:
                folders.append(entry.name)
    return sorted(files), sorted(folders), sorted(links)


def utf8(name: str) -> bool:
    """Whether a path (as ``os`` decodes it: undecodable bytes as surrogates) is UTF-8, as a
    file name must be to be read (and watched: watchfiles cannot report another)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
