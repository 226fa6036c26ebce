"""The names of the git source's options, checked (``check_ref``, ``clean_path``), and those git
never writes to a worktree, whatever a commit's trees hold.

git's ``verify_path`` refuses them at a checkout: it says ``error: invalid path '...'``, writes
the rest, and exits 0. A crafted tree may hold such an entry (``tasks/..``, ``tasks/.GIT``): the
checkout's plan (``gitcheckout``) finds them, so that each is a definition error at its path
rather than a file that silently is not there; and ``--git-path`` may not name one (it could
only ever be missing).

The rules are git's on Linux with its defaults (``core.protectNTFS`` on, ``core.protectHFS``
off), each applied to one name of a path:

- ``""``, ``.``, ``..``;
- ``.git`` in any case, and the names NTFS reads as it: ``git~1`` (its short name) in any case,
  either followed by dots and spaces only, or by ``:`` (a stream) or ``\\`` (a separator to
  NTFS) and anything; a ``\\`` starts a name to NTFS, checked as such too;
- for a symbolic link, ``.gitmodules`` (and ``gitmod~1`` to ``gitmod~4``) the same way.

Not covered: the rarer fallback NTFS short names of ``.gitmodules`` (``gi7eba~N``); such a link
is then a link to nothing, which the reading reports.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

_DOTGIT = re.compile(r"(?is)(?:\.git|git~1)[. ]*(?::.*)?")
_DOTGITMODULES = re.compile(r"(?is)(?:\.gitmodules|gitmod~[1-4])[. ]*(?::.*)?")


def refused_name(name: str, *, link: bool = False) -> bool:
    """Whether git refuses to write an entry named ``name`` (one name of a path; ``link``: the
    entry is a symbolic link), as the module says."""
    if name in ("", ".", ".."):
        return True
    for part in name.split("\\"):  # to NTFS, a backslash separates names
        if _DOTGIT.fullmatch(part) or (link and _DOTGITMODULES.fullmatch(part)):
            return True
    return False


def refused_part(path: str, *, link: bool = False) -> str | None:
    """The start of ``path`` (a path of a commit, "/"-separated) up to the first name git
    refuses to write (its last one counted as ``link`` when the entry is a link); None if git
    writes it."""
    names = path.split("/")
    for at, name in enumerate(names):
        if refused_name(name, link=link and at == len(names) - 1):
            return "/".join(names[: at + 1])
    return None


def check_ref(ref: str) -> None:
    """Refuse a ref that could be read as an option or is not a ref name at all."""
    if not ref or ref.startswith("-") or any(c.isspace() or c in "~^:?*[\\" for c in ref):
        raise ValueError(f"invalid git ref: {ref!r}")
    if ".." in ref or ref.endswith((".", "/", ".lock")) or "//" in ref or "@{" in ref:
        raise ValueError(f"invalid git ref: {ref!r}")


def clean_path(path: str) -> str:
    """``path`` (``--git-path``) as a clean relative POSIX path ("" for the root); refuses
    escapes, and a name git never writes (``.git`` in any case, at any depth: no checkout
    holds one, and a path there read as a link into git's own ``.git``)."""
    pure = PurePosixPath(path.strip() or ".")
    if pure.is_absolute() or ".." in pure.parts:
        raise ValueError(f"git path must be relative to the repository root: {path!r}")
    if any(refused_name(name) for name in pure.parts):
        raise ValueError(
            f"git path must not lead into git's own .git, which no checkout holds: {path!r}"
        )
    clean = str(pure)
    return "" if clean == "." else clean
