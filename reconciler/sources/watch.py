"""File watching (watchfiles): the one module of the sources that imports it.

Events only mark paths dirty; the controller's pass re-reads them (level-triggered). A missed
event is healed by the periodic full resync, so the watcher may be lossy but never wrong.

What is watched is what the walk reads (``walk.iter_folders``), each folder on its own: a link
to a folder is never followed (watchfiles would follow it anywhere, ``/usr`` included, and
report the files of a folder linked twice under one of its two names only). The folder of each
root is watched too, and that of each link on its way: a root swapped whole (a folder renamed
over it, a file moved over it, a ConfigMap's ``..data`` or git-sync's ``--link`` replaced) or
made late is seen at once. Whenever the watches are made anew (a root swapped, a folder made
or moved, the watch failed, a burst of changes that may have overflowed the OS's queue) the
roots are reported, as changes may have been missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from watchfiles import Change, awatch

from reconciler.aio import in_thread
from reconciler.sources.limits import excerpt
from reconciler.sources.walk import enters, iter_folders, utf8

log = logging.getLogger("crontask.sources")
# watchfiles logs every batch of changes at INFO, those of the folder that holds a root too: a
# log file written beside the task folder would log its own writes for ever. crontask logs
# what a change does.
logging.getLogger("watchfiles").setLevel(logging.WARNING)

# Editors save in bursts (write, rename, chmod): wait this long for the burst to end. Small
# enough that an edit is in effect well under a second.
DEBOUNCE_MS = 50
# A failed watch is made again after this, doubling up to _RETRY_MAX while it keeps failing:
# one bad file name makes every event about it fail (see _failure), and it may change often.
RETRY_AFTER = 1.0
_RETRY_MAX = 30.0
# A watch that lasted this long worked: its next failure starts the backoff afresh.
_HEALTHY = 60.0
# The watches are made anew at most this often: a folder made and removed in a loop costs a
# full listing and a read of the roots per second, not per event.
_REARM_EVERY = 1.0
_MAX_WATCHES = "/proc/sys/fs/inotify/max_user_watches"
_SHOWN = 500  # of a failure's message (it may name a path)
# A batch of this many changes or more is taken for an overflow of the OS's queue of events
# (inotify's holds 16384 by default): watchfiles drops the notice that it overflowed, and the
# changes lost with it would wait for the resync. The roots are reported (read whole) instead,
# and the watches made anew: a folder made meanwhile may be unwatched.
OVERFLOW = 4096


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
    the watch's start goes unseen until the next resync. While neither a root nor its folder
    exists (``armed`` set at once), it looks again after a backoff, as after a failure, and
    reports the roots once there is something to watch.

    A watch that fails (a file whose name is not UTF-8, which watchfiles cannot report; the OS
    out of watches) is logged in one line and made again after a backoff."""
    spelled = [root.absolute() for root in roots]
    everything = {str(root) for root in spelled}
    failures = 0
    again: set[str] = set()  # reported once the next watches exist
    warned = False
    loop = asyncio.get_running_loop()

    async def pause(seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)

    while not stop.is_set():
        started = loop.time()
        try:
            plan = await in_thread(_Plan.of, spelled)
            if not plan.paths:  # gone, folder and all (unmounted, removed): look again
                if armed is not None:
                    armed.set()
                again = everything
                await pause(min(retry_after * 2**failures, _RETRY_MAX))
                failures += 1
                continue
            warned = warned or _too_many(len(plan.paths))
            outdated = await _watch(plan, on_change, stop, armed, debounce_ms, again)
        except Exception as err:
            problem = _failure(err)
            if problem is None:
                raise
            again = everything
            failures = 0 if loop.time() - started > _HEALTHY else failures
            delay = min(retry_after * 2**failures, _RETRY_MAX)
            failures += 1
            log.warning(
                "file watch failed; watching again shortly",
                extra={"fields": {"error": problem, "retry_in_seconds": delay}},
            )
            await pause(delay)
            continue
        failures = 0
        again = plan.roots if outdated else set()
        if outdated:
            await pause(started + _REARM_EVERY - loop.time())


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    """What one round of watching covers."""

    roots: set[str]  # as spelled (absolute)
    folders: set[str]  # the folders the walk enters, and the roots that are files
    inodes: dict[str, tuple[int, int] | None]  # per folder: a folder swapped under its name
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
        watched = {f for f in folders if utf8(f)}
        return cls(
            roots={str(root) for root in roots},
            folders=watched,
            inodes={f: _inode(f) for f in watched},
            parents={p for p in parents if utf8(p)},
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

    def outdated(self, batch: set[tuple[Change, str]]) -> bool:
        """Whether these watches no longer cover what the walk would read, after ``batch``
        changed: a root is another file or folder (or the link on its way leads elsewhere), a
        folder to enter appeared, or one watched went, moved or was made anew under its name
        (watchfiles would go on reporting its files under its old name, or hear nothing of
        the new one: ``rm -r sub && mkdir sub`` may even give it the old inode number)."""
        if any(_identity(Path(root)) != known for root, known in self.identities.items()):
            return True
        for change, path in batch:
            if path in self.roots:
                continue  # a root's own changes are its identity's
            if path in self.folders:
                # Removed, moved or made (what is there now is new), a link now, or another
                # folder under its name.
                if change is not Change.modified or os.path.islink(path):
                    return True
                if _inode(path) != self.inodes[path]:
                    return True
            elif os.path.dirname(path) in self.folders:
                folder = Path(path)
                if any(enters(Path(root), folder) for root in self.roots) and utf8(path):
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
            if len(batch) >= OVERFLOW:
                on_change(set(plan.roots))
                return True
            inside = plan.inside({path for _, path in batch})
            if inside:
                on_change(inside)
            if plan.outdated(batch):
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


def _inode(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _too_many(watches: int) -> bool:
    """Whether ``watches`` folders are more than the system lets a user watch (inotify adds
    what it can and says nothing of the rest); logged once."""
    try:
        with open(_MAX_WATCHES) as limit:
            allowed = int(limit.read())
    except (OSError, ValueError):
        return False
    if watches <= allowed:
        return False
    log.warning(
        "more folders to watch than the system allows: changes in some are seen only at the "
        "next resync (raise fs.inotify.max_user_watches)",
        extra={"fields": {"folders": watches, "max_user_watches": allowed}},
    )
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
