"""File watching (watchfiles): the one module of the sources that imports it.

Events only mark paths dirty; the controller's pass re-reads them (level-triggered). A missed
event is healed by the periodic full resync, so the watcher may be lossy but never wrong.

What is watched is what the walk reads (``walk.iter_folders``), each folder on its own: a link
to a folder is never followed (watchfiles would follow it anywhere, ``/usr`` included, and
report the files of a folder linked twice under one of its two names only). The folder of each
root is watched too, and that of each link on its way: a root swapped whole (a folder renamed
over it, a file moved over it, a ConfigMap's ``..data`` or git-sync's ``--link`` replaced) or
made late is seen at once. Whenever the watches are made anew (a root swapped, a folder made
or moved, the watch failed) the roots are reported, as changes may have been missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from watchfiles import awatch

from reconciler.aio import in_thread
from reconciler.sources.limits import excerpt
from reconciler.sources.walk import enters, iter_folders

log = logging.getLogger("crontask.sources")

# Editors save in bursts (write, rename, chmod): wait this long for the burst to end. Small
# enough that an edit is in effect well under a second.
DEBOUNCE_MS = 50
# A failed watch is made again after this, doubling up to _RETRY_MAX while it keeps failing:
# one bad file name makes every event about it fail (see _failure), and it may change often.
RETRY_AFTER = 1.0
_RETRY_MAX = 30.0
# A watch that lasted this long worked: its next failure starts the backoff afresh.
_HEALTHY = 60.0
_SHOWN = 500  # of a failure's message (it may name a path)


async def watch_paths(
    roots: Sequence[Path],
    on_change: Callable[[set[str]], None],
    stop: asyncio.Event,
    *,
    armed: asyncio.Event | None = None,
    debounce_ms: int = DEBOUNCE_MS,
    retry_after: float = RETRY_AFTER,
) -> None:
    """Call ``on_change`` with the absolute paths that changed under ``roots`` (a root itself,
    when it was replaced or must be read whole), until ``stop`` is set.

    ``armed`` is set once the OS watches exist: a change made after that is reported. The
    daemon waits for it before its first pass, so nothing written between that pass's read and
    the watch's start goes unseen until the next resync. Returns at once (``armed`` set) if
    neither a root nor its folder exists: the resync reads them when they come.

    A watch that fails (a file whose name is not UTF-8, which watchfiles cannot report; the OS
    out of watches) is logged in one line and made again after a backoff."""
    spelled = [root.absolute() for root in roots]
    failures = 0
    again: set[str] = set()  # reported once the next watches exist
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        started = loop.time()
        try:
            plan = await in_thread(_Plan.of, spelled)
            if not plan.paths:
                if armed is not None:
                    armed.set()
                return
            outdated = await _watch(plan, on_change, stop, armed, debounce_ms, again)
        except Exception as err:
            problem = _failure(err)
            if problem is None:
                raise
            again = {str(root) for root in spelled}
            failures = 0 if loop.time() - started > _HEALTHY else failures
            delay = min(retry_after * 2**failures, _RETRY_MAX)
            failures += 1
            log.warning(
                "file watch failed; watching again shortly",
                extra={"fields": {"error": problem, "retry_in_seconds": delay}},
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            continue
        again = plan.roots if outdated else set()


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    """What one round of watching covers."""

    roots: set[str]  # as spelled (absolute)
    folders: set[str]  # the folders the walk enters, and the roots that are files
    parents: set[str]  # the folders of the roots and of the links on their way
    identities: dict[str, tuple[str, int, int] | None]  # per root, see _identity

    @classmethod
    def of(cls, roots: Sequence[Path]) -> _Plan:
        """The watches for ``roots`` as they are now (it lists every folder: run it in a
        thread). A path whose name is not UTF-8 cannot be given to watchfiles: left out."""
        folders: set[str] = set()
        parents: set[str] = set()
        for root in roots:
            if os.path.isdir(root):
                folders.update(str(folder) for folder, _ in iter_folders(root))
            elif os.path.exists(root):
                folders.add(str(root))
            parents.update(str(p) for p in _on_the_way(root) if os.path.isdir(p))
        return cls(
            roots={str(root) for root in roots},
            folders={f for f in folders if _utf8(f)},
            parents={p for p in parents if _utf8(p)},
            identities={str(root): _identity(root) for root in roots},
        )

    @property
    def paths(self) -> list[str]:
        return sorted(self.folders | self.parents)

    def inside(self, paths: set[str]) -> set[str]:
        """The changed ``paths`` that are, or are under, a root: the folder of a root holds
        other things."""
        under = tuple(root.rstrip(os.sep) + os.sep for root in self.roots)
        return {p for p in paths if p in self.roots or p.startswith(under)}

    def outdated(self, paths: set[str]) -> bool:
        """Whether these watches no longer cover what the walk would read, after ``paths``
        changed: a root is another file or folder (or the link on its way leads elsewhere), a
        folder to enter appeared, or one watched went or moved (watchfiles would go on
        reporting its files under its old name)."""
        if any(_identity(Path(root)) != known for root, known in self.identities.items()):
            return True
        for path in paths:
            if path in self.folders:  # a root's own changes are its identity's
                if path not in self.roots and (not os.path.isdir(path) or os.path.islink(path)):
                    return True
            elif os.path.dirname(path) in self.folders or path in self.roots:
                folder = Path(path)
                if any(enters(Path(root), folder) for root in self.roots) and _utf8(path):
                    return True
        return False


async def _watch(
    plan: _Plan,
    on_change: Callable[[set[str]], None],
    stop: asyncio.Event,
    armed: asyncio.Event | None,
    debounce_ms: int,
    again: set[str],
) -> bool:
    """Watch what ``plan`` covers until ``stop`` is set (False) or it is outdated (True);
    ``again`` is reported as soon as the watches exist."""
    loop = asyncio.get_running_loop()
    # awatch creates its OS watches synchronously, in the generator's first step, before its
    # first await; a callback queued now runs only after that step has suspended.
    if armed is not None:
        loop.call_soon(armed.set)
    if again:
        loop.call_soon(on_change, set(again))
    async with contextlib.aclosing(
        awatch(
            *plan.paths,
            stop_event=stop,
            debounce=debounce_ms,
            step=10,
            recursive=False,
            # Also passes over a folder removed since it was listed (else FileNotFoundError).
            ignore_permission_denied=True,
        )
    ) as changes:
        async for batch in changes:
            paths = {path for _, path in batch}
            inside = plan.inside(paths)
            if inside:
                on_change(inside)
            if plan.outdated(paths):
                return True
    return False


def _on_the_way(root: Path) -> list[Path]:
    """The folders whose entries make ``root`` what it is: its own folder, and the folder of
    each link among its ancestors (git-sync's ``--link`` above ``current/tasks``)."""
    found = [root.parent]
    for ancestor in root.parents:
        if os.path.islink(ancestor):
            found.append(ancestor.parent)
    return found


def _identity(root: Path) -> tuple[str, int, int] | None:
    """What ``root`` is now: where its links lead, and the file or folder there; None if it
    does not exist."""
    try:
        stat = os.stat(root)
    except OSError:
        return None
    return os.path.realpath(root), stat.st_dev, stat.st_ino


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _failure(err: BaseException) -> str | None:
    """Why the watch failed, in one line, if it is a failure of the watch (an OS error, or
    watchfiles' own, which awatch raises inside an ExceptionGroup: a file name that is not
    UTF-8 is ``Unable to decode path``); None if it is anything else."""
    leaves = _leaves(err)
    if all(isinstance(e, (OSError, RuntimeError)) for e in leaves):
        return excerpt("; ".join(str(e) or type(e).__name__ for e in leaves), _SHOWN)
    return None


def _leaves(err: BaseException) -> list[BaseException]:
    if isinstance(err, BaseExceptionGroup):
        return [leaf for sub in err.exceptions for leaf in _leaves(sub)]
    return [err]
