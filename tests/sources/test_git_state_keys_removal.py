"""The deletion of other keys' state folders (``gitkeys.remove_others``) runs in a thread of its
own once a revision is in force: a folder of many files must hold neither the first sync (the
source's ready, the API) nor the stop, which ends it between entries and leaves at most a
``.removing-*`` folder, deleted next time. Its log names the URL redacted, and a folder that
cannot be deleted is warned about once. Real git as in test_git."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from reconciler import statedir
from reconciler.sources import gitkeys
from tests.sources.test_git import Clock, Remote, clock, doc, isolated_git, remote, source_for
from tests.sources.test_git_state_keys import folders, held, messages, removed

__all__ = ["clock", "held", "isolated_git", "remote"]  # fixtures, used by name

OLD_KEY = "00000000000000aa"
DEADLINE = 30.0


def old_folder(state: Path, files: int = 3000) -> Path:
    folder = state / "git" / OLD_KEY
    (folder / "worktrees" / "w").mkdir(parents=True)
    for i in range(files):
        (folder / "worktrees" / "w" / f"{i}.yaml").write_text("x")
    return folder


class Gate:
    """``remove_tree`` held until ``open`` (or the deadline: a test never hangs)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reached = threading.Event()
        self.opened = threading.Event()
        self.done = threading.Event()  # the real deletion ran
        real = gitkeys.remove_tree

        def gated(top: Path, *more: Any) -> None:
            self.reached.set()
            self.opened.wait(DEADLINE)
            try:
                real(top, *more)
            finally:
                self.done.set()

        monkeypatch.setattr(gitkeys, "remove_tree", gated)


def test_the_source_is_ready_and_stops_while_the_deletion_is_held(
    remote: Remote, held: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = old_folder(held)
    gate = Gate(monkeypatch)
    remote.write("t.yaml", doc("t"))
    remote.commit()
    source = source_for(remote, held, clock)

    async def run() -> None:
        stop = asyncio.Event()
        readied = asyncio.Event()
        watching = asyncio.create_task(source.watch(lambda hints: None, readied.set, stop))
        await asyncio.wait_for(readied.wait(), DEADLINE)
        assert await asyncio.to_thread(gate.reached.wait, DEADLINE)
        assert not gate.done.is_set()  # ready while the deletion is held
        stop.set()
        await asyncio.wait_for(watching, DEADLINE)
        assert not gate.done.is_set()  # and stopped without waiting for it

    asyncio.run(run())
    gate.opened.set()
    removed(source)
    # The stop ended the walk between entries: the folder is renamed, not a key's any more.
    (left,) = [p for p in (held / "git").iterdir() if p.name != source.base.name]
    assert left.name.startswith(f".removing-{OLD_KEY}-")
    assert not old.exists()

    # The next start deletes what is left.
    again = source_for(remote, held, clock)
    assert again.sync() is False
    removed(again)
    assert folders(held) == [source.base.name]


def test_the_sync_returns_while_the_deletion_is_held(
    remote: Remote, held: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_folder(held)
    gate = Gate(monkeypatch)
    remote.write("t.yaml", doc("t"))
    remote.commit()
    source = source_for(remote, held, clock)
    assert source.sync() is True
    assert gate.reached.wait(DEADLINE)
    assert not gate.done.is_set()  # the sync returned while the deletion is held
    gate.opened.set()
    removed(source)
    assert folders(held) == [source.base.name]


def test_the_deletion_log_redacts_the_url_of_source_json(
    held: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = old_folder(held, files=1)
    url = "https://user:s3cret@example.com/r.git"
    (old / "source.json").write_text(json.dumps({"url": url, "ref": "main", "path": ""}))
    base = held.absolute() / "git" / "0123456789abcdef"
    caplog.set_level(logging.INFO, logger="crontask.sources.git")
    gitkeys.remove_others(held, base)
    (deleted,) = messages(caplog, "of another source deleted")
    assert "s3cret" not in str(deleted.__dict__["fields"])
    assert deleted.__dict__["fields"]["ref"] == "main"
    assert not (held / "git" / OLD_KEY).exists()


def test_a_folder_that_cannot_be_deleted_is_warned_about_once(
    held: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_folder(held, files=1)

    def failing(top: Path, *more: Any) -> None:
        raise PermissionError(1, "Operation not permitted", "w")

    monkeypatch.setattr(gitkeys, "remove_tree", failing)
    caplog.set_level(logging.INFO, logger="crontask.sources.git")
    gitkeys.remove_others(held, held.absolute() / "git" / "0123456789abcdef")
    assert len(messages(caplog, "not deleted")) == 1


@pytest.mark.parametrize("leftover", [False, True], ids=["key folder", "leftover"])
def test_a_folder_with_a_bind_mount_in_it_is_left_alone(
    held: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, leftover: bool
) -> None:
    """A bind mount of a folder of the same disk has its device (``gittree``'s check misses
    it): ``/proc/self/mountinfo`` lists it, and the folder holding it is not deleted at all.
    A real mount needs privileges tests do not have: the list is the test's."""
    old = old_folder(held, files=2)
    if leftover:  # what a deletion cut short left
        old = old.rename(old.with_name(f".removing-{OLD_KEY}-0a1b2c3d"))
    mounted = old / "worktrees" / "w"
    monkeypatch.setattr(
        statedir, "mount_points", lambda: frozenset({"/", os.path.realpath(mounted)})
    )
    caplog.set_level(logging.INFO, logger="crontask.sources.git")
    gitkeys.remove_others(held, held.absolute() / "git" / "0123456789abcdef")
    assert sorted(p.name for p in mounted.iterdir()) == ["0.yaml", "1.yaml"]
    (said,) = messages(caplog, "a file system is mounted in it")
    assert said.__dict__["fields"]["mounted"] == os.path.realpath(mounted)
