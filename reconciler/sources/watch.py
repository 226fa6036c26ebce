"""File watching (watchfiles): the one module of the sources that imports it.

Events only mark paths dirty; the controller's pass re-reads them (level-triggered). A missed
event is healed by the periodic full resync, so the watcher may be lossy but never wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from watchfiles import awatch

log = logging.getLogger("crontask.sources")

# Editors save in bursts (write, rename, chmod): wait this long for the burst to end. Small
# enough that an edit is in effect well under a second.
DEBOUNCE_MS = 50


async def watch_paths(
    roots: Sequence[Path],
    on_change: Callable[[set[str]], None],
    stop: asyncio.Event,
    *,
    armed: asyncio.Event | None = None,
    debounce_ms: int = DEBOUNCE_MS,
) -> None:
    """Call ``on_change`` with the absolute paths that changed, until ``stop`` is set.

    ``armed`` is set once the OS watches exist: a change made after that is reported. The
    daemon waits for it before its first pass, so nothing written between that pass's read and
    the watch's start goes unseen until the next resync.

    A root that is a symlink (git-sync's ``--link``, a ConfigMap mount) is swapped, not edited:
    the watch on its old target sees nothing. Its parent folder is watched too, so the swap
    itself is an event naming the link."""
    targets = _targets(roots)
    if not targets:
        if armed is not None:
            armed.set()
        return
    while not stop.is_set():
        if armed is not None:
            # awatch creates its OS watches synchronously, in the generator's first step, before
            # its first await; a callback queued now runs only after that step has suspended.
            asyncio.get_running_loop().call_soon(armed.set)
        try:
            async for changes in awatch(
                *targets,
                stop_event=stop,
                debounce=debounce_ms,
                step=10,
                recursive=True,
                ignore_permission_denied=True,
            ):
                on_change({path for _, path in changes})
        except (OSError, RuntimeError) as err:
            # The watched folder went away or the OS watcher failed. The resync still reads
            # the paths; try to watch again shortly.
            log.warning("file watch failed; retrying", extra={"fields": {"error": str(err)}})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=5.0)
            targets = _targets(roots) or targets


def _targets(roots: Sequence[Path]) -> list[str]:
    found: set[str] = set()
    for root in roots:
        if root.is_symlink():
            found.add(str(root.absolute().parent))
        if root.exists():
            found.add(str(root.absolute()))
    return sorted(found)
