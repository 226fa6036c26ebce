"""A ``--git-ref`` the remote has, but that names no commit (a tag of a blob or of a tree,
plain or annotated, or a full SHA of one): the sync fails saying what the ref names, not that
it is missing, in the status and in the log line, and the revision in force stays. Real git,
as in test_git."""

from __future__ import annotations

import logging
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


@pytest.mark.parametrize("annotated", [False, True])
@pytest.mark.parametrize("kind", ["blob", "tree"])
def test_a_tag_of_a_blob_or_tree_says_what_it_names(
    kind: str,
    annotated: bool,
    remote: Remote,
    state: Path,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    applied = remote.commit()
    obj = remote.git("rev-parse", f"HEAD:tasks/{'a.yaml' if kind == 'blob' else ''}")
    remote.git("tag", "v1", applied)
    remote.push("refs/tags/v1")
    source = source_for(remote, state, clock, ref="v1")
    assert synced(source)

    # The tag moves to the object: what it names now is said, and the commit stays in force.
    remote.git("tag", "--force", *(["--annotate", "-m", "v1"] if annotated else []), "v1", obj)
    remote.push("refs/tags/v1", force=True)
    with caplog.at_level(logging.WARNING, logger="crontask.sources.git"):
        assert synced(source) is False
    said = f"ref 'v1' names a {kind}, not a commit"
    status = source.status()
    assert status.last_error == f"{said} (retrying in 60s)"
    assert status.applied_revision == applied
    assert schedules(source) == {"default/a": "1 * * * *"}
    (line,) = [r for r in caplog.records if r.getMessage() == "git sync failed"]
    assert line.fields["error"] == said  # type: ignore[attr-defined]
    assert "not found" not in status.last_error


def test_a_full_sha_of_a_blob_says_it_is_a_blob(remote: Remote, state: Path, clock: Clock) -> None:
    remote.write("a.yaml", doc("a"))
    remote.commit()
    blob = remote.git("rev-parse", "HEAD:a.yaml")
    remote.git("tag", "keep", blob)  # the remote hands the blob out through this tag
    remote.push("refs/tags/keep")
    source = source_for(remote, state, clock, ref=blob)
    assert synced(source) is False
    assert (
        source.status().last_error == f"ref {blob!r} names a blob, not a commit (retrying in 60s)"
    )
    assert source.status().applied_revision is None


def test_a_missing_tag_is_still_not_found(remote: Remote, state: Path, clock: Clock) -> None:
    remote.write("a.yaml", doc("a"))
    remote.commit()
    source = source_for(remote, state, clock, ref="v9")
    assert synced(source) is False
    assert source.status().last_error == "ref 'v9' not found on remote (retrying in 60s)"


def test_a_tag_of_a_blob_beside_a_branch_of_its_name_is_ambiguous(
    remote: Remote, state: Path, clock: Clock
) -> None:
    """A tag counts whatever it names: a branch of its name is not followed in its place (a
    branch anyone may push must not stand in for a pinned tag)."""
    remote.write("a.yaml", doc("a"))
    remote.commit(branch="v1")
    remote.git("tag", "v1", remote.git("rev-parse", "HEAD:a.yaml"))
    remote.push("refs/tags/v1")
    source = source_for(remote, state, clock, ref="v1")
    assert synced(source) is False
    assert source.status().last_error == (
        "ref 'v1' is ambiguous: the remote has both refs/heads/v1 and refs/tags/v1; set the ref"
        " to refs/heads/v1 or refs/tags/v1 (retrying in 60s)"
    )
    assert schedules(source) == {}
