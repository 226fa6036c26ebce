"""A burst of changes large enough to overflow the OS's queue of events is reported as the
roots (a full rescan), and the watches are made anew. watchfiles drops the notice of an
overflow (notify's Rescan event has no path), so a file renamed into place during a storm of
60 000 files made and removed waited for the five-minute resync.

The batches come from a stand-in for watchfiles' ``awatch`` (no storm needed): what is tested
is what the watch does with a batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from watchfiles import Change

from reconciler.sources import watch
from reconciler.sources.watch import watch_paths

Batch = set[tuple[Change, str]]
BURST = 5000  # changes in one batch: at least watch.OVERFLOW


def reported(monkeypatch: pytest.MonkeyPatch, root: Path, batches: list[Batch]) -> list[set[str]]:
    """What the watch of ``root`` reports, in order, while watchfiles gives ``batches``."""
    rounds: list[int] = []

    async def awatch(*paths: str, stop_event: asyncio.Event, **_: Any) -> AsyncIterator[Batch]:
        rounds.append(len(batches))
        while batches:
            yield batches.pop(0)
        await stop_event.wait()

    monkeypatch.setattr(watch, "awatch", awatch)

    async def main() -> list[set[str]]:
        stop = asyncio.Event()
        seen: asyncio.Queue[set[str]] = asyncio.Queue()
        watching = asyncio.create_task(watch_paths([root], seen.put_nowait, stop))
        found = [await asyncio.wait_for(seen.get(), 10)]
        if found[0] == {str(root)}:  # watched anew: the roots are reported once more
            found.append(await asyncio.wait_for(seen.get(), 10))
        stop.set()
        await asyncio.wait_for(watching, 10)
        assert len(rounds) == len(found)
        return found

    return asyncio.run(main())


def storm(root: Path, size: int) -> Batch:
    batch = {(Change.added, str(root / f"junk{i}.txt")) for i in range(size // 2)}
    return batch | {(Change.deleted, str(root / f"junk{i}.txt")) for i in range(size // 2)}


def test_a_batch_that_may_have_overflowed_reports_the_roots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path.absolute()
    found = reported(monkeypatch, root, [storm(root, BURST)])
    assert found == [{str(root)}, {str(root)}]


def test_a_smaller_batch_reports_its_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path.absolute()
    batch = storm(root, 200)
    assert reported(monkeypatch, root, [batch]) == [{path for _, path in batch}]
