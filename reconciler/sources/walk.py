"""The walk of a task folder: which files under a path are task files, in what order.

Every ``*.yaml``/``*.yml`` file, recursively; hidden files and folders (``.git``, the ``..data``
folders of a Kubernetes ConfigMap mount) are skipped, symlinked files are yielded (reading
decides whether they may be followed), symlinked folders are not entered. The walk is a loop
bounded in depth, not recursion: a commit can nest folders past Python's recursion limit.
No state, no reading: ``files.DirectorySource`` reads what this finds, and the file watch
(``watch``) watches the folders it enters.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

YAML_SUFFIXES = (".yaml", ".yml")

# Folders nested deeper than this below a root are not read: task folders are a few levels
# deep, and this is the bound on YAML nesting too (limits.YamlLimits.max_depth).
MAX_FOLDER_DEPTH = 100


def is_yaml_file(path: Path) -> bool:
    return path.suffix in YAML_SUFFIXES and not path.name.startswith(".")


def iter_yaml_files(
    root: Path,
    too_deep: list[Path] | None = None,
    unlisted: list[Path] | None = None,
    linked: list[Path] | None = None,
) -> Iterator[Path]:
    """YAML files under ``root`` in a stable order (a folder's files by name, then each of its
    folders by name), skipping hidden entries and not entering linked folders. A folder more
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
