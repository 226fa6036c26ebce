"""The mirror's own ``HEAD`` (``repo.git/HEAD``, written once, when it is made, and never synced
to disk by git) emptied or garbled, as a power loss can leave it: git then takes ``repo.git``
for no repository at all, and every fetch failed with ``not a git repository`` for ever, the
mirror neither checked nor cloned again. It is written anew before the next fetch, and the
mirror's objects are kept. Real git."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from tests.sources.test_git import Clock, Remote, doc, isolate_git, schedules, source_for, synced


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


@pytest.mark.parametrize("damage", [b"", b"\0\0\0\0\0\0\0\0", b"ref: ", b"ref: heads/main\n"])
def test_a_damaged_mirror_head_is_written_anew_and_the_fetch_succeeds(
    damage: bytes, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    remote, clock = Remote(tmp_path), Clock()
    remote.write("a.yaml", doc("a"))
    remote.commit()
    source = source_for(remote, tmp_path / "state", clock)
    assert synced(source)
    objects = source.base / "repo.git" / "objects"
    kept = {p.name for p in objects.rglob("*") if p.is_file()}
    (source.base / "repo.git" / "HEAD").write_bytes(damage)
    remote.write("b.yaml", doc("b"))
    second = remote.commit()

    with caplog.at_level(logging.WARNING, logger="crontask.sources.git"):
        assert synced(source), source.status().last_error
    assert source.status().revision == second
    assert source.status().last_error is None
    assert set(schedules(source)) == {"default/a", "default/b"}
    assert kept <= {p.name for p in objects.rglob("*") if p.is_file()}  # not cloned anew
    said = [r.getMessage() for r in caplog.records]
    assert said == ["git mirror's HEAD damaged: written anew"], caplog.text


def test_a_sound_mirror_head_is_left_as_it_is(tmp_path: Path) -> None:
    remote, clock = Remote(tmp_path), Clock()
    remote.write("a.yaml", doc("a"))
    remote.commit()
    source = source_for(remote, tmp_path / "state", clock)
    assert synced(source)
    head = source.base / "repo.git" / "HEAD"
    head.write_bytes(b"ref: refs/heads/trunk\n")  # any branch name git reads
    before = head.stat()
    assert synced(source) is False
    assert head.stat().st_ino == before.st_ino
    assert head.read_bytes() == b"ref: refs/heads/trunk\n"


@pytest.mark.parametrize("folder", ["refs", "objects"])
def test_a_mirror_missing_a_folder_git_needs_is_fetched_again(
    folder: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``refs`` holds only empty folders once git packed its refs: a cleaner of empty folders
    takes it, and git then takes ``repo.git`` for no repository (``objects`` likewise)."""
    remote, clock = Remote(tmp_path), Clock()
    remote.write("a.yaml", doc("a"))
    remote.commit()
    source = source_for(remote, tmp_path / "state", clock)
    assert synced(source)
    shutil.rmtree(source.base / "repo.git" / folder)
    remote.write("b.yaml", doc("b"))
    second = remote.commit()
    with caplog.at_level(logging.WARNING, logger="crontask.sources.git"):
        assert synced(source), source.status().last_error
    assert source.status().revision == second
    assert set(schedules(source)) == {"default/a", "default/b"}
    assert f"git mirror's {folder} folder missing: made anew" in caplog.text
