"""A local repository (``file://`` or a path) owned by another user is read: git refuses it
("detected dubious ownership") unless ``safe.directory`` names it, and crontask's git reads no
user or system config where one could. The repository the user named is trusted, as
``safe.directory`` would; nothing else is. Needs root, to give the repository away."""

from __future__ import annotations

import os
import pwd
import shlex
from pathlib import Path

import pytest

from reconciler.sources.git import GitOptions, GitSource
from reconciler.sources.gitbounds import MEMORY_CONFIG
from reconciler.sources.gitrepo import local_path, upload_pack
from tests.sources.test_git import Clock, Remote, clock, doc, isolated_git, remote, state

__all__ = ["clock", "isolated_git", "remote", "state"]  # fixtures shared with test_git


def give_away(path: Path) -> None:
    """``path`` and everything under it owned by ``nobody``; skips when that cannot be."""
    if os.geteuid() != 0:
        pytest.skip("needs root to give a repository to another user")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody'")
    for top, folders, files in os.walk(path):
        for name in [top, *(os.path.join(top, n) for n in folders + files)]:
            os.lchown(name, nobody.pw_uid, nobody.pw_gid)


@pytest.mark.parametrize("form", ["file://", "path", "link"])
def test_a_local_repository_of_another_user_is_read(
    remote: Remote, state: Path, clock: Clock, tmp_path: Path, form: str
) -> None:
    remote.write("tasks/a.yaml", doc("a"))
    first = remote.commit()
    remote.write("tasks/b.yaml", doc("b"))
    dropped = remote.commit()  # then force-pushed away: a commit no ref reaches
    remote.git("reset", "--quiet", "--hard", first)
    head = remote.commit(force=True, stage=False)
    give_away(remote.bare)
    link = tmp_path / "link.git"
    link.symlink_to(remote.bare)
    url = {"file://": f"file://{remote.bare}/", "path": str(remote.bare), "link": str(link)}
    source = GitSource(GitOptions(url[form]), state, clock=clock)

    assert source.sync() is True, source.status().last_error
    assert source.status().applied_revision == head
    # A pinned commit no ref reaches is fetched by its SHA: the same way.
    pinned = GitSource(GitOptions(url[form], ref=dropped), state / "pinned", clock=clock)
    assert pinned.sync() is True, pinned.status().last_error
    assert pinned.status().applied_revision == dropped


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("file:///srv/a%20b/r.git", "/srv/a b/r.git"),
        ("file://localhost/srv/r.git", "/srv/r.git"),
        ("/srv/r.git", "/srv/r.git"),
        ("../r.git", "../r.git"),
        ("r.git", "r.git"),
        ("./host:r.git", "./host:r.git"),  # a "/" before the ":": a path
        ("git@host:org/r.git", None),  # scp-like
        ("host:r.git", None),
        ("ssh://git@host/r.git", None),
        ("https://host/r.git", None),
    ],
)
def test_local_repositories_are_told_from_remote_ones(url: str, path: str | None) -> None:
    assert local_path(url) == path


def test_only_a_local_fetch_runs_upload_pack_with_the_setting() -> None:
    """A remote's upload-pack is the server's business (and runs there): left alone."""
    assert upload_pack("https://host/r.git") == []
    assert upload_pack("git@host:r.git") == []
    option, command = upload_pack("file:///srv/it's here/r.git/")
    assert option == "--upload-pack"
    assert shlex.split(command) == [
        "git",
        *MEMORY_CONFIG,  # -c does not reach a local upload-pack, and it runs under the limit
        *("-c", "safe.directory=/srv/it's here/r.git"),
        *("-c", "safe.directory=/srv/it's here/r.git/.git"),
        *("-c", "safe.directory=/srv/it's here/r.git.git"),
        "upload-pack",
    ]


def test_a_working_clone_of_another_user_is_read(remote: Remote, state: Path, clock: Clock) -> None:
    """Not bare: git finds the repository in its ``.git``, and checks that folder's owner."""
    remote.write("tasks/a.yaml", doc("a"))
    head = remote.commit()
    give_away(remote.work)
    source = GitSource(GitOptions(str(remote.work)), state, clock=clock)
    assert source.sync() is True, source.status().last_error
    assert source.status().applied_revision == head
