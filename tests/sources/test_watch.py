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


def test_a_root_gone_folder_and_all_is_looked_for_and_reported_when_it_comes(
    tmp_path: Path,
) -> None:
    """An unmounted volume, a removed folder: the watch arms at once, never ends by itself (a
    component that ends stops crontask), and reports the root once it is there again."""

    async def main() -> set[str]:
        armed, stop = asyncio.Event(), asyncio.Event()
        missing = tmp_path / "missing" / "tasks"
        changed: asyncio.Queue[set[str]] = asyncio.Queue()
        watch = asyncio.ensure_future(
            watch_paths([missing], changed.put_nowait, stop, armed=armed, retry_after=0.05)
        )
        await asyncio.wait_for(armed.wait(), 5)
        await asyncio.sleep(0.2)  # looks again a few times meanwhile
        assert not watch.done()
        missing.mkdir(parents=True)
        seen = await asyncio.wait_for(changed.get(), 5)
        stop.set()
        await asyncio.wait_for(watch, 5)
        return seen

    assert asyncio.run(main()) == {str(tmp_path / "missing" / "tasks")}
