"""The file watch against what a folder can do to it, with real inotify (watchfiles): a name
that is not UTF-8, a root swapped or made late, links to folders anywhere, folders moved in."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from reconciler.sources.files import DirectorySource
from reconciler.sources.watch import watch_paths
from tests.sources.test_files import doc, keys, write

WAIT = 10.0  # seconds for an event that should come in milliseconds


class Seen:
    """What the watch reported, batch by batch; ``armed`` is set each time its watches are
    made (anew): a change made after that is reported."""

    def __init__(self) -> None:
        self.batches: asyncio.Queue[set[str]] = asyncio.Queue()
        self.all: set[str] = set()
        self.armed = asyncio.Event()

    async def rearmed(self) -> None:
        """Wait for the watches to be made anew (``armed`` cleared before the change that
        makes them so)."""
        await asyncio.wait_for(self.armed.wait(), WAIT)

    async def until(self, wanted: Callable[[set[str]], bool]) -> set[str]:
        """Every path reported up to the first batch that ``wanted`` holds of."""

        async def wait() -> set[str]:
            while True:
                batch = await self.batches.get()
                self.all |= batch
                if wanted(batch):
                    return self.all

        return await asyncio.wait_for(wait(), WAIT)


@asynccontextmanager
async def watching(roots: list[Path]) -> AsyncIterator[Seen]:
    seen, stop = Seen(), asyncio.Event()
    task = asyncio.create_task(
        watch_paths(roots, seen.batches.put_nowait, stop, armed=seen.armed, retry_after=0.01)
    )
    await seen.rearmed()
    seen.armed.clear()
    try:
        yield seen
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)  # raises what the watch raised


def has(path: Path) -> Callable[[set[str]], bool]:
    return lambda batch: str(path) in batch


def test_a_file_name_not_utf8_does_not_end_the_watch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # watchfiles cannot report such a name: the batch holding it fails, with all it held.
    root = tmp_path / "tasks"
    root.mkdir()

    async def main() -> None:
        async with watching([root]) as seen:
            bad = os.fsencode(root) + b"/caf\xe9.yaml"
            with open(bad, "w") as file:
                file.write(doc("latin"))
            good = write(root / "b.yaml", doc("b"))
            # Watched again, the root is reported: what the failed batch held is read anew.
            await seen.rearmed()
            await seen.until(has(root))
            write(good, doc("b", "0 3 * * *"))
            await seen.until(has(good))

    with caplog.at_level(logging.WARNING, logger="crontask.sources"):
        asyncio.run(main())
    failures = [r for r in caplog.records if r.getMessage().startswith("file watch failed")]
    assert failures
    assert all(r.exc_info is None for r in failures)  # one line each, no traceback
    assert "Unable to decode path" in failures[0].fields["error"]  # type: ignore[attr-defined]


def test_a_folder_swapped_by_rename_is_watched_anew(tmp_path: Path) -> None:
    root = tmp_path / "tasks"
    write(root / "a.yaml", doc("a"))

    async def main() -> None:
        async with watching([root]) as seen:
            for turn in range(2):
                new = write(tmp_path / "tasks.new" / "a.yaml", doc("a", f"0 {turn} * * *"))
                seen.armed.clear()
                root.rename(tmp_path / "tasks.old")
                new.parent.rename(root)
                shutil.rmtree(tmp_path / "tasks.old")
                await seen.until(has(root))
                await seen.rearmed()
                edited = write(root / "a.yaml", doc("a", f"1 {turn} * * *"))
                await seen.until(has(edited))

    asyncio.run(main())


def test_a_file_root_replaced_by_mv_is_watched_anew(tmp_path: Path) -> None:
    # `crontask run tasks.yaml`, updated as the README advises: a new name renamed over it.
    root = write(tmp_path / "tasks.yaml", doc("a"))

    async def main() -> None:
        async with watching([root]) as seen:
            for hour in range(3):
                seen.armed.clear()
                os.replace(write(tmp_path / "tasks.yaml.tmp", doc("a", f"0 {hour} * * *")), root)
                await seen.until(has(root))
                await seen.rearmed()

    asyncio.run(main())


def test_a_root_below_a_swapped_link_is_watched_anew(tmp_path: Path) -> None:
    # `crontask run /git/current/tasks`, git-sync swapping `current` to each new worktree.
    for revision in ("r1", "r2"):
        write(tmp_path / revision / "tasks" / "a.yaml", doc("a"))
    current = tmp_path / "current"
    current.symlink_to("r1")
    root = current / "tasks"

    async def main() -> None:
        async with watching([root]) as seen:
            (tmp_path / "staged").symlink_to("r2")
            os.replace(tmp_path / "staged", current)
            await seen.rearmed()
            await seen.until(has(root))
            edited = write(root / "a.yaml", doc("a", "0 3 * * *"))
            await seen.until(has(edited))

    asyncio.run(main())


def test_a_root_made_after_the_start_is_watched(tmp_path: Path) -> None:
    # A volume mounted late, git-sync's first clone.
    root = tmp_path / "tasks"

    async def main() -> None:
        async with watching([root]) as seen:
            write(root / "a.yaml", doc("a"))
            await seen.until(has(root))
            await seen.rearmed()
            edited = write(root / "a.yaml", doc("a", "0 3 * * *"))
            await seen.until(has(edited))

    asyncio.run(main())


def test_a_configmap_update_is_seen_at_once(tmp_path: Path) -> None:
    mount = tmp_path / "mount"
    write(mount / "..2026_01_01.1" / "tasks.yaml", doc("a", "0 2 * * *"))
    (mount / "..data").symlink_to("..2026_01_01.1")
    (mount / "tasks.yaml").symlink_to("..data/tasks.yaml")
    source = DirectorySource([mount])
    source.refresh()

    async def main() -> set[str]:
        async with watching([mount]) as seen:
            write(mount / "..2026_01_02.1" / "tasks.yaml", doc("a", "0 3 * * *"))
            (mount / "..data_tmp").symlink_to("..2026_01_02.1")
            os.replace(mount / "..data_tmp", mount / "..data")
            shutil.rmtree(mount / "..2026_01_01.1")
            return await seen.until(has(mount / "..data"))

    hints = asyncio.run(main())
    assert source.refresh(hints) == {"default/a"}
    assert keys(source) == {"default/a": "0 3 * * *"}


def test_a_single_file_of_a_configmap_is_seen_at_once(tmp_path: Path) -> None:
    mount = tmp_path / "mount"
    write(mount / "..2026_01_01.1" / "tasks.yaml", doc("a", "0 2 * * *"))
    (mount / "..data").symlink_to("..2026_01_01.1")
    (mount / "tasks.yaml").symlink_to("..data/tasks.yaml")
    root = mount / "tasks.yaml"

    async def main() -> None:
        async with watching([root]) as seen:
            write(mount / "..2026_01_02.1" / "tasks.yaml", doc("a", "0 3 * * *"))
            (mount / "..data_tmp").symlink_to("..2026_01_02.1")
            os.replace(mount / "..data_tmp", mount / "..data")
            await seen.until(has(root))

    asyncio.run(main())


@pytest.mark.parametrize("target", ["../elsewhere", "..", "team", "."])
def test_a_linked_folder_is_not_watched_and_its_folder_is_where_it_is(
    tmp_path: Path, target: str
) -> None:
    """The walk does not enter a link to a folder; nor does the watch, which would arm
    inotify on whatever it leads to (``/usr``), and, for a folder of the root linked twice,
    report its files under the link's name only."""
    root = tmp_path / "tasks"
    a = write(root / "a.yaml", doc("a"))
    b = write(root / "team" / "b.yaml", doc("b"))
    elsewhere = write(tmp_path / "elsewhere" / "c.yaml", doc("c"))
    (root / "link").symlink_to(target)

    async def main() -> set[str]:
        async with watching([root]) as seen:
            write(elsewhere, doc("c", "0 3 * * *"))
            write(b, doc("b", "0 3 * * *"))
            write(a, doc("a", "0 3 * * *"))
            return await seen.until(has(a))

    reported = asyncio.run(main())
    assert str(b) in reported
    assert not any("/link/" in path or path.startswith(str(elsewhere)) for path in reported)


def test_a_folder_moved_in_is_watched(tmp_path: Path) -> None:
    root = tmp_path / "tasks"
    write(root / "a.yaml", doc("a"))
    staging = write(tmp_path / "staging" / "team" / "b.yaml", doc("b")).parent

    async def main() -> None:
        async with watching([root]) as seen:
            staging.rename(root / "team")
            await seen.rearmed()
            await seen.until(has(root))  # watched anew, and read whole
            edited = write(root / "team" / "b.yaml", doc("b", "0 3 * * *"))
            await seen.until(has(edited))
            (root / "team").rename(staging)
            await seen.until(has(root / "team"))

    asyncio.run(main())


@pytest.mark.parametrize("how", ["rename", "rm-mkdir"])
def test_a_folder_replaced_under_its_name_is_watched_anew(tmp_path: Path, how: str) -> None:
    # A deploy that builds `sub.new` and renames it over `sub`, or `rm -rf sub && mkdir sub`:
    # the watch on the old folder's inode would hear nothing of the new one.
    root = tmp_path / "tasks"
    (root / "sub").mkdir(parents=True)

    async def main() -> None:
        async with watching([root]) as seen:
            if how == "rename":
                (root / ".sub.new").mkdir()
                os.rename(root / "sub", root / ".sub.old")
                os.rename(root / ".sub.new", root / "sub")
                shutil.rmtree(root / ".sub.old")
            else:
                shutil.rmtree(root / "sub")
                (root / "sub").mkdir()
            await seen.rearmed()
            later = root / "sub" / "later.yaml"
            write(later, doc("later"))
            await seen.until(has(later))

    asyncio.run(main())


def test_writes_beside_the_root_are_not_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The folder that holds a root is watched (for the root's own entry): a log file written
    # there would otherwise log each of its own writes, for ever.
    caplog.set_level(logging.INFO)
    root = tmp_path / "tasks"
    root.mkdir()

    async def main() -> None:
        async with watching([root]) as seen:
            (tmp_path / "crontask.log").write_text("a line\n")
            inside = root / "t.yaml"
            write(inside, doc("t"))
            await seen.until(has(inside))

    asyncio.run(main())
    assert not [r for r in caplog.records if r.name.startswith("watchfiles")]
