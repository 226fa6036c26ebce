"""A ``--git-ref`` name is fetched as a branch and as a tag: once the branch is deleted on the
remote and a tag of its name exists, the tag is followed, never the commit the deleted branch
last had (its remote-tracking ref, which the failed branch fetch does not prune). A branch of
that name back beside the tag makes the name ambiguous: refused, the tag's revision stays."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.sources.test_git import (
    Clock,
    Remote,
    clock,
    doc,
    isolated_git,
    remote,
    schedules,
    source_for,
    state,
    synced,
)

__all__ = ["clock", "isolated_git", "remote", "state"]  # test_git's fixtures, used by name


def has_ref(repo: Path, name: str) -> bool:
    found = subprocess.run(
        ["git", f"--git-dir={repo}", "rev-parse", "--verify", "--quiet", name],
        capture_output=True,
        check=False,
        timeout=30,
    )
    return found.returncode == 0


def test_a_deleted_branch_gives_way_to_the_tag_of_its_name(
    remote: Remote, state: Path, clock: Clock
) -> None:
    remote.write("a.yaml", doc("a"))
    on_branch = remote.commit(branch="rel")
    source = source_for(remote, state, clock, ref="rel")
    assert synced(source)
    assert source.status().applied_revision == on_branch

    remote.push(":refs/heads/rel")
    remote.rm("a.yaml")
    remote.write("b.yaml", doc("b"))
    tagged = remote.commit()
    remote.git("tag", "rel", tagged)
    remote.push("refs/tags/rel")
    assert synced(source)
    status = source.status()
    assert (status.applied_revision, status.attempted_revision) == (tagged, tagged)
    assert status.last_error is None
    assert set(schedules(source)) == {"default/b"}
    # The deleted branch's remote-tracking ref is gone: it keeps none of its commits.
    repo = source.base / "repo.git"
    assert not has_ref(repo, "refs/remotes/origin/rel")

    # The branch back beside the tag: neither wins, the name is refused.
    remote.write("c.yaml", doc("c"))
    remote.commit(branch="rel")
    assert synced(source) is False
    status = source.status()
    assert (status.last_error or "").startswith(
        "ref 'rel' is ambiguous: the remote has both refs/heads/rel and refs/tags/rel;"
    )
    assert status.applied_revision == tagged
    assert set(schedules(source)) == {"default/b"}
