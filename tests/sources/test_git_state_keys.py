"""Another ``--git-ref`` spelling, ``--git-path`` or URL spelling is another state folder
(``<state>/git/<key>``). The one before is not adopted, but the log names it while the new one
has no revision in force, and it is deleted (one log line) once the new one has: it held the
whole fetched history for ever. Only while this process holds the state directory; names that
are not a key's are left alone. Real git as in test_git."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import statedir
from reconciler.sources.git import GitSource
from tests.sources.test_git import (
    Clock,
    Remote,
    clock,
    doc,
    isolated_git,
    remote,
    schedules,
    source_for,
    synced,
)

__all__ = ["clock", "isolated_git", "remote"]  # test_git's fixtures, used by name


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Path]:
    """A state directory this process holds, as ``crontask run --git`` does."""
    state = tmp_path / "state"
    state.mkdir()
    statedir.lock(state)
    try:
        yield state
    finally:
        statedir.unlock(state)


def folders(state: Path) -> list[str]:
    return sorted(p.name for p in (state / "git").iterdir())


def removed(source: GitSource) -> None:
    """Wait for the deletion of the other folders the sync started (a thread: ``gitkeys``)."""
    thread = source._removal
    assert thread is not None
    thread.join(timeout=60)
    assert not thread.is_alive()


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


@pytest.mark.parametrize(
    ("before", "after"),
    [({"ref": "main"}, {"ref": "refs/heads/main"}), ({"path": "a"}, {"path": "b"})],
    ids=["ref", "path"],
)
def test_the_folder_of_the_options_before_is_named_then_deleted_once_a_revision_applies(
    remote: Remote,
    held: Path,
    clock: Clock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    before: dict[str, str],
    after: dict[str, str],
) -> None:
    remote.write("a/t.yaml", doc("t"))
    remote.write("b/t.yaml", doc("t"))
    remote.commit()
    old = source_for(remote, held, clock, **before)
    assert synced(old)
    (old_key,) = folders(held)

    remote.bare.rename(tmp_path / "away.git")  # the remote is down at the restart
    caplog.set_level(logging.INFO, logger="crontask.sources.git")
    new = source_for(remote, held, clock, **after)
    (named,) = messages(caplog, "no git revision in force")
    fields = named.__dict__["fields"]
    assert fields["folder"] == str(held.absolute() / "git" / old_key)
    assert (fields["ref"], fields["path"]) == (
        before.get("ref", "HEAD"),
        before.get("path", ""),
    )
    assert synced(new) is False  # nothing in force: the folder before stays
    assert old_key in folders(held)
    assert not messages(caplog, "of another source deleted")

    (tmp_path / "away.git").rename(remote.bare)
    assert synced(new)
    removed(new)
    assert folders(held) == [new.base.name]
    (deleted,) = messages(caplog, "of another source deleted")
    assert deleted.__dict__["fields"]["folder"] == str(held.absolute() / "git" / old_key)
    assert schedules(new) == {"default/t": "* * * * *"}

    # A later sync (and a restart with the revision in force) names and deletes nothing more.
    caplog.clear()
    assert synced(new) is False
    assert synced(source_for(remote, held, clock, **after)) is False
    assert not messages(caplog, "no git revision in force")
    assert not messages(caplog, "of another source deleted")


def test_nothing_is_deleted_in_a_state_directory_this_process_does_not_hold(
    remote: Remote, tmp_path: Path, clock: Clock
) -> None:
    state = tmp_path / "state"
    remote.write("t.yaml", doc("t"))
    remote.commit()
    one = source_for(remote, state, clock, ref="main")
    other = source_for(remote, state, clock, ref="refs/heads/main")
    assert synced(one)
    assert synced(other)
    assert folders(state) == sorted([one.base.name, other.base.name])


def test_only_folders_named_as_keys_and_leftovers_of_a_deletion_are_deleted(
    remote: Remote, held: Path, clock: Clock, tmp_path: Path
) -> None:
    root = held / "git"
    root.mkdir(mode=0o700)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "keep").mkdir(parents=True)
    (root / "notes").mkdir()  # not a key's name
    (root / "0123456789abcdef").write_text("a file named as a key\n")
    os.symlink(elsewhere, root / "fedcba9876543210")  # a link named as a key: not followed
    (root / "00000000000000aa" / "worktrees").mkdir(parents=True)  # a key's folder
    (root / ".removing-00000000000000bb-1234abcd" / "repo.git").mkdir(parents=True)
    remote.write("t.yaml", doc("t"))
    remote.commit()
    source = source_for(remote, held, clock)
    assert synced(source)
    removed(source)
    assert folders(held) == sorted(
        ["0123456789abcdef", "fedcba9876543210", "notes", source.base.name]
    )
    assert (elsewhere / "keep").is_dir()
