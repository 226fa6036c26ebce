"""The state folders of git sources: ``<state_dir>/git/<key>``, one per URL, ref and path.

``<key>`` hashes the redacted URL, the ref and the path as written (``state_key``), so a
change of any of them (``--git-ref main`` to ``refs/heads/main``, as the ambiguity error
advises; another ``--git-path``; another spelling of the URL) starts a new folder: a new clone,
and no revision in force until the remote answers. The folder before is not adopted (it
follows another ref or path: its tree is not what the new options name), but:

- while the new folder has no revision in force, the log names the folder of the same URL
  that holds one (``log_previous``), so that an operator knows why the tasks are gone and
  where their last revision is;
- once the new folder has a revision in force, every other key's folder is deleted
  (``remove_others``): each kept the whole fetched history and a worktree, for ever. The
  source runs it in a thread of its own (``start_removal``): a folder of 300 000 files took
  minutes, and must hold neither the first pass, the API nor the shutdown. ``stopped`` is
  asked between entries, so a stop ends it at once: what it leaves is a ``.removing-*``
  folder (below).

Deleting is safe because a ``crontask run`` with ``--git`` holds its state directory
(``statedir.lock``: a second one is refused) and runs one git source, so no other process or
source writes there; without that lock (a caller that took none) nothing is deleted. A folder
is renamed to ``.removing-<key>-<random>`` first, in one step, then deleted: one half deleted
(crontask killed meanwhile) never passes for a key's folder whose ``current`` names a
worktree with files missing; such leftovers are deleted the next time. Names that are not a
key's (16 hex digits), and anything that is not a folder, are left alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from reconciler import statedir
from reconciler.core.urls import redact_url
from reconciler.sources.gittree import Stopped
from reconciler.sources.gittree import remove_tree as remove_tree  # named here: tests replace it

log = logging.getLogger("crontask.sources.git")

_KEY = re.compile(r"[0-9a-f]{16}")
_REMOVING = ".removing-"
_DESCRIPTION = "source.json"
_MAX_DESCRIPTION = 64 * 1024  # ours are a few hundred bytes
_MAX_ERROR = 300


def state_key(url: str, ref: str, path: str) -> str:
    """The folder name of the source following ``ref`` and ``path`` of ``url`` (redacted)."""
    return hashlib.sha256(f"{url}\0{ref}\0{path}".encode()).hexdigest()[:16]


def describe(base: Path, url: str, ref: str, path: str) -> None:
    """Name the folder's owner for people looking at it, and for ``log_previous`` (nothing
    secret in it). Raises OSError."""
    info = base / _DESCRIPTION
    if not info.exists():
        text = json.dumps({"url": url, "ref": ref, "path": path})
        info.write_text(text + "\n", encoding="utf-8")


def log_previous(base: Path, url: str) -> None:
    """``base`` has no revision in force: name, in one line each, the other folders of ``url``
    that hold one. Raises nothing."""
    for folder in _others(base):
        described = _description(folder)
        if described.get("url") != url or not os.path.lexists(folder / "current"):
            continue
        fields = {
            "folder": str(folder),
            "ref": described.get("ref"),
            "path": described.get("path"),
            "url": url,
        }
        log.warning(
            "no git revision in force until the remote answers; the one before is in the "
            "state folder of another --git-ref, --git-path or URL spelling (not used; deleted "
            "once a revision is in force)",
            extra={"fields": fields},
        )


def start_removal(state_dir: Path, base: Path, stopped: Callable[[], bool]) -> threading.Thread:
    """``remove_others`` in a daemon thread (nothing waits for it; ``stopped`` ends it)."""
    thread = threading.Thread(
        target=remove_others,
        args=(state_dir, base, stopped),
        name="crontask-git-remove-others",
        daemon=True,
    )
    thread.start()
    return thread


def remove_others(state_dir: Path, base: Path, stopped: Callable[[], bool] = lambda: False) -> None:
    """``base`` has a revision in force: delete the folders of other keys beside it (and what
    an earlier deletion left), one log line each. Only while this process holds ``state_dir``.
    A folder that cannot be deleted is a warning; once ``stopped()``, the rest is left for next
    time. Raises nothing."""
    if not statedir.holds(state_dir):
        return
    tried: set[str] = set()  # renamed here: a failure is warned once, not walked again
    points = statedir.mount_points()
    for folder in _others(base):
        if _mounted_inside(folder, points):
            continue
        described = _description(folder)
        moved = folder.with_name(f"{_REMOVING}{folder.name}-{uuid.uuid4().hex[:8]}")
        try:
            if stopped():
                return
            os.rename(folder, moved)
            tried.add(moved.name)
            remove_tree(moved, stopped)
        except Stopped:
            _log_stopped(folder)
            return
        except OSError as err:
            fields = {"folder": str(folder), "error": str(err)[:_MAX_ERROR]}
            log.warning("git state folder of another source not deleted", extra={"fields": fields})
            continue
        if "url" in described:  # anyone could write a password there
            described["url"] = redact_url(described["url"])
        fields = {"folder": str(folder), **described}
        log.info("git state folder of another source deleted", extra={"fields": fields})
    _remove_leftovers(base.parent, tried, stopped)


def _mounted_inside(folder: Path, points: frozenset[str]) -> bool:
    """Whether a file system is mounted at or inside ``folder`` (a bind mount of the same disk
    has its device: ``gittree``'s check of devices misses it), said in a warning: it is left
    alone, its files are not this crontask's to delete."""
    real = os.path.realpath(folder)
    inside = [p for p in points if p == real or p.startswith(real + os.sep)]
    if inside:
        fields = {"folder": str(folder), "mounted": inside[0][:_MAX_ERROR]}
        log.warning(
            "git state folder of another source not deleted: a file system is mounted in it",
            extra={"fields": fields},
        )
    return bool(inside)


def _log_stopped(folder: Path | str) -> None:
    fields = {"folder": str(folder)}
    log.info(
        "deletion of a git state folder of another source cut short by the stop; the rest "
        "is deleted next time",
        extra={"fields": fields},
    )


def _others(base: Path) -> list[Path]:
    """The folders beside ``base`` named as keys are (not links, not files)."""
    try:
        entries = list(os.scandir(base.parent))
    except OSError:
        return []
    return sorted(
        Path(entry.path)
        for entry in entries
        if entry.name != base.name
        and _KEY.fullmatch(entry.name)
        and entry.is_dir(follow_symlinks=False)
    )


def _remove_leftovers(root: Path, tried: set[str], stopped: Callable[[], bool]) -> None:
    """What a deletion cut short (crontask killed or stopped) left: renamed first, so never in
    use. Those in ``tried`` were just walked (and warned about)."""
    try:
        entries = [
            e for e in os.scandir(root) if e.name.startswith(_REMOVING) and e.name not in tried
        ]
    except OSError:
        return
    points = statedir.mount_points()
    for entry in entries:
        if _mounted_inside(Path(entry.path), points):
            continue
        try:
            remove_tree(Path(entry.path), stopped)
        except Stopped:
            _log_stopped(entry.path)
            return
        except OSError as err:
            fields = {"folder": entry.path, "error": str(err)[:_MAX_ERROR]}
            log.warning("git state folder of another source not deleted", extra={"fields": fields})


def _description(folder: Path) -> dict[str, str]:
    """The url, ref and path a folder's ``source.json`` names ({} if it cannot be read)."""
    try:
        fd = os.open(folder / _DESCRIPTION, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return {}
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return {}
        data = json.loads(os.read(fd, _MAX_DESCRIPTION))
    except (OSError, ValueError):
        return {}
    finally:
        os.close(fd)
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if k in ("url", "ref", "path") and isinstance(v, str)}
