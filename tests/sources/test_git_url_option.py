"""A repository URL is never read as an option of git: every git call puts it (and every path)
after ``--end-of-options``. ``--git=--upload-pack=CMD`` reached ``git fetch`` as that option,
and CMD ran on this host at every sync (``--git`` now refuses it too: tests/cli)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.sources.git import GitOptions, GitSource
from tests.sources.test_git import Clock, Remote, clock, doc, isolated_git, remote, state

__all__ = ["clock", "isolated_git", "remote", "state"]  # fixtures shared with test_git

SHA = "0123456789012345678901234567890123456789"


def hostile(mark: Path) -> str:
    """A URL that, read as an option, makes git run ``touch mark`` as its upload-pack."""
    return f"--upload-pack=touch {mark};"


@pytest.mark.parametrize("ref", ["main", SHA])
def test_a_url_beginning_with_a_dash_runs_nothing(
    state: Path, clock: Clock, tmp_path: Path, ref: str
) -> None:
    mark = tmp_path / "ran"
    source = GitSource(GitOptions(hostile(mark), ref=ref), state, clock=clock)

    assert source.sync() is False
    assert source.status().last_error is not None
    assert not mark.exists()


def test_a_local_folder_named_with_a_dash_is_read_as_a_relative_path(
    remote: Remote, state: Path, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote.write("a.yaml", doc("a"))
    sha = remote.commit()
    (tmp_path / "-tasks.git").symlink_to(remote.bare)
    monkeypatch.chdir(tmp_path)
    source = GitSource(GitOptions("./-tasks.git"), state, clock=clock)

    assert source.sync() is True, source.status().last_error
    assert source.status().applied_revision == sha
