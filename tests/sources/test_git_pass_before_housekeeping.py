"""A new revision's pass starts as soon as ``current`` has moved: the old worktree's deletion,
``git worktree prune`` and ``git gc --auto`` come after it is handed over, in the sync's thread,
one sync at a time. A real bare remote and the real ``watch``; the deletion of the old worktree
is held on an event (a tree of 10 000 files took ~29 s to delete, and held the pass that long).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from reconciler.sources import git as git_source
from reconciler.sources import gitrevisions, gittree
from reconciler.sources.git import GitOptions, GitSource
from reconciler.sources.gitrepo import GitRepo
from tests.sources.test_git import Remote, doc, git, isolated_git, remote

__all__ = ["isolated_git", "remote"]  # fixtures shared with test_git

T = TypeVar("T")
DEADLINE = 10.0  # seconds: far more than a sync of a two-file repository takes


async def within(waiting: Awaitable[T]) -> T:
    return await asyncio.wait_for(waiting, DEADLINE)


def push(remote: Remote, name: str) -> str:
    remote.write(f"{name}.yaml", doc(name))
    return remote.commit()


class HeldRemoval:
    """``remove_tree`` of the worktrees, the first one held until ``release``; what happened
    (removals, fetches, collections) in order in ``events``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started, self.release = threading.Event(), threading.Event()
        self.events: list[str] = []
        real_fetch, real_collect = GitRepo.fetch_ref, GitRepo.collect

        def remove_tree(path: Path, stopped: Callable[[], bool]) -> None:
            held = not self.started.is_set()
            self.events.append(f"remove {path.name[:7]}")
            if held:
                self.started.set()
                assert self.release.wait(2 * DEADLINE), "the removal was never released"
            gittree.remove_tree(path, stopped)
            self.events.append(f"removed {path.name[:7]}")

        def fetch_ref(repo: GitRepo, url: str, ref: str) -> tuple[str, ...]:
            self.events.append("fetch")
            return real_fetch(repo, url, ref)

        def collect(repo: GitRepo) -> None:
            real_collect(repo)
            self.events.append("collected")

        monkeypatch.setattr(gitrevisions, "remove_tree", remove_tree)
        monkeypatch.setattr(GitRepo, "fetch_ref", fetch_ref)
        monkeypatch.setattr(GitRepo, "collect", collect)


def read_pass(source: GitSource) -> dict[str, str | None]:
    """What a pass does with the source: re-read it, take its definitions."""
    source.refresh(())
    return {d.key: d.location.revision for d in source.definitions()}


async def until(condition: object, what: str) -> None:
    async def waiting() -> None:
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.02)

    try:
        await within(waiting())
    except TimeoutError:
        raise AssertionError(f"not within {DEADLINE} s: {what}") from None


def test_the_pass_of_a_new_revision_starts_before_the_old_tree_is_deleted(
    remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(git_source, "HOOK_SPACING", 0.0)
    first = push(remote, "a")
    source = GitSource(GitOptions(remote.url, interval=3600), tmp_path / "state")
    held = HeldRemoval(monkeypatch)

    async def scenario() -> None:
        passes: asyncio.Queue[None] = asyncio.Queue()
        ready, stop = asyncio.Event(), asyncio.Event()
        watching = asyncio.create_task(
            source.watch(lambda _: passes.put_nowait(None), ready.set, stop)
        )
        try:
            await within(passes.get())
            await within(ready.wait())
            assert source.status().revision == first
            await until(lambda: held.events.count("collected") == 1, "the first sync's end")

            second = await asyncio.to_thread(push, remote, "b")
            assert source.request_sync()
            assert await asyncio.to_thread(held.started.wait, DEADLINE), "no removal"
            # The old tree is being deleted, and its deletion is held: the pass is already due,
            # reads the new revision (no lock of the deletion holds it), and the API agrees.
            try:
                await within(passes.get())
            except TimeoutError:
                raise AssertionError("the pass waited for the old worktree's deletion") from None
            assert await within(asyncio.to_thread(read_pass, source)) == {
                "default/a": second,  # read again, from the new revision
                "default/b": second,
            }
            assert source.status().revision == second
            assert (source.worktrees / first).is_dir()  # still being deleted
            assert (source.worktrees / second).is_dir()
            assert "collected" not in held.events[held.events.index(f"remove {first[:7]}") :]

            # A push meanwhile is fetched once the housekeeping ended, not during it.
            third = await asyncio.to_thread(push, remote, "c")
            assert source.request_sync()
            held.release.set()
            await until(lambda: source.status().revision == third, "the third revision")
            await until(lambda: held.events.count("collected") == 3, "the third sync's end")
            assert not stop.is_set()
        finally:
            held.release.set()
            stop.set()
            await within(watching)
        assert held.events == [
            "fetch",
            "collected",
            "fetch",
            f"remove {first[:7]}",
            f"removed {first[:7]}",
            "collected",
            "fetch",
            f"remove {second[:7]}",
            f"removed {second[:7]}",
            "collected",
        ]
        assert sorted(p.name for p in source.worktrees.iterdir()) == [third]
        listed = git("--git-dir", str(source.base / "repo.git"), "worktree", "list")
        assert first not in listed  # pruned
        assert second not in listed
        assert set(read_pass(source).values()) == {third}

    asyncio.run(scenario())


def test_a_sync_called_alone_still_ends_with_the_old_tree_deleted(
    remote: Remote, tmp_path: Path
) -> None:
    """Outside ``watch`` (tests, the first sync of ``validate``-like callers) ``sync()`` returns
    once the housekeeping is done, as before."""
    first = push(remote, "a")
    source = GitSource(GitOptions(remote.url, interval=3600), tmp_path / "state")
    assert source.sync()
    second = push(remote, "b")
    assert source.sync()
    assert [p.name for p in source.worktrees.iterdir()] == [second]
    listed = git("--git-dir", str(source.base / "repo.git"), "worktree", "list")
    assert first not in listed
