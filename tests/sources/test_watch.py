"""The file watch: real inotify (watchfiles) on real folders."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from reconciler.sources.watch import watch_paths


async def _first_change(roots: list[Path], change: Path, *, symlink_swap: bool = False) -> set[str]:
    stop, armed = asyncio.Event(), asyncio.Event()
    seen: asyncio.Queue[set[str]] = asyncio.Queue()
    watching = asyncio.create_task(watch_paths(roots, seen.put_nowait, stop, armed=armed))
    try:
        await asyncio.wait_for(armed.wait(), timeout=10)
        # No pause here on purpose: the change lands the moment the watch says it is armed.
        if symlink_swap:
            os.replace(change, roots[0])
        else:
            change.write_text("spec: {}\n")
        return await asyncio.wait_for(seen.get(), timeout=10)
    finally:
        stop.set()
        await asyncio.wait_for(watching, timeout=10)


def test_a_change_made_as_soon_as_the_watch_is_armed_is_reported(tmp_path: Path) -> None:
    # The daemon reads its folders right after `armed`; a file written in that instant must
    # not wait for the five-minute resync.
    (tmp_path / "nested").mkdir()
    for attempt in range(5):  # each attempt races the arming afresh
        target = tmp_path / "nested" / f"new-{attempt}.yaml"
        changed = asyncio.run(_first_change([tmp_path], target))
        assert str(target) in changed


def test_a_swapped_symlink_root_is_reported_by_its_link(tmp_path: Path) -> None:
    # git-sync swaps `--link` atomically; the watch on the old target would see nothing.
    for name in ("rev-a", "rev-b"):
        (tmp_path / name).mkdir()
    link = tmp_path / "current"
    link.symlink_to(tmp_path / "rev-a")
    staged = tmp_path / "staged"
    staged.symlink_to(tmp_path / "rev-b")
    changed = asyncio.run(_first_change([link], staged, symlink_swap=True))
    assert str(link) in changed


def test_no_existing_root_nor_folder_of_it_arms_at_once_and_ends(tmp_path: Path) -> None:
    # A root whose folder exists is watched for (tests/sources/test_folder_hostile.py).
    async def main() -> bool:
        armed = asyncio.Event()
        missing = tmp_path / "missing" / "tasks"
        await asyncio.wait_for(
            watch_paths([missing], lambda _: None, asyncio.Event(), armed=armed), 5
        )
        return armed.is_set()

    assert asyncio.run(main())
