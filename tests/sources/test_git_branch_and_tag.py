"""A ``--git-ref`` name is the branch or the tag of that name, never the branch in place of the
tag: when the remote has both, the ref is ambiguous and refused (git itself resolves the name
to the tag), the revision in force stays, and the message says how to name the one meant."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def ambiguous(name: str) -> str:
    return (
        f"ref {name!r} is ambiguous: the remote has both refs/heads/{name} and refs/tags/{name};"
        f" set the ref to refs/heads/{name} or refs/tags/{name} (retrying in 60s)"
    )


@pytest.mark.parametrize("name", ["v1.0.0", "20240101"])  # the second looks like a SHA
def test_a_branch_pushed_under_a_pinned_tag_name_is_refused(
    name: str, remote: Remote, state: Path, clock: Clock
) -> None:
    remote.write("a.yaml", doc("a", "1 * * * *"))
    tagged = remote.commit()
    remote.git("tag", name, tagged)
    remote.push(f"refs/tags/{name}")
    source = source_for(remote, state, clock, ref=name)
    assert synced(source)
    assert source.status().applied_revision == tagged

    remote.write("evil.yaml", doc("evil", "6 6 6 6 *"))
    pushed = remote.commit(branch=name)
    assert synced(source) is False
    status = source.status()
    assert status.last_error == ambiguous(name)
    assert status.applied_revision == tagged  # the revision in force stays
    assert schedules(source) == {"default/a": "1 * * * *"}

    # Each is still followed by its full name.
    for full, expected in ((f"refs/tags/{name}", tagged), (f"refs/heads/{name}", pushed)):
        qualified = source_for(remote, state / full.replace("/", "_"), clock, ref=full)
        assert synced(qualified)
        assert qualified.status().applied_revision == expected


def test_a_tag_pushed_under_a_followed_branch_name_is_refused_too(
    remote: Remote, state: Path, clock: Clock
) -> None:
    remote.write("a.yaml", doc("a"))
    first = remote.commit(branch="release")
    source = source_for(remote, state, clock, ref="release")
    assert synced(source)
    assert source.status().applied_revision == first

    remote.git("tag", "release", first)  # even at the same commit: the next push may differ
    remote.push("refs/tags/release")
    assert synced(source) is False
    assert source.status().last_error == ambiguous("release")
    assert source.status().applied_revision == first

    remote.push(":refs/tags/release")  # the fix on the remote's side: the sync recovers
    remote.write("b.yaml", doc("b"))
    second = remote.commit(branch="release")
    assert synced(source)
    assert (source.status().applied_revision, source.status().last_error) == (second, None)


def test_a_name_that_is_only_a_branch_or_only_a_tag_is_followed(
    remote: Remote, state: Path, clock: Clock
) -> None:
    remote.write("a.yaml", doc("a"))
    on_branch = remote.commit(branch="stable")
    remote.write("b.yaml", doc("b"))
    tagged = remote.commit()
    remote.git("tag", "-a", "-m", "annotated", "v2", tagged)
    remote.push("refs/tags/v2")
    for name, expected in (("stable", on_branch), ("v2", tagged)):
        source = source_for(remote, state / name, clock, ref=name)
        assert synced(source)
        assert source.status().applied_revision == expected
        assert source.sync() is False  # nothing new: no error either
        assert source.status().last_error is None

    missing = source_for(remote, state / "missing", clock, ref="nope")
    assert missing.sync() is False
    assert missing.status().last_error == "ref 'nope' not found on remote (retrying in 60s)"
