"""The last sync of a git source is the last one that ended well: fetched, and the ref's
revision applied (or found applied already). A fetch that works but whose revision cannot be
applied (refused whole, ambiguous, a failed checkout) is a failed sync, so the last sync
(``/api/v1/sources``' lastSync, ``crontask_source_last_sync_timestamp_seconds``) stops moving
and ``CrontaskSourceSyncFailing`` fires: a revision that never applies pages someone.

Real git as in test_git; sync() driven directly with the fake clock."""

from __future__ import annotations

from pathlib import Path

from reconciler.sources.git import GitOptions, GitSource
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
from tests.sources.test_git_bounds import sparse_zeros

__all__ = ["clock", "isolated_git", "remote", "state"]  # test_git's fixtures, used by name


def fails_while_fetching(source: GitSource, clock: Clock, synced_at: object, times: int) -> None:
    """``times`` syncs, each later on the clock: every one fails, none moves the last sync,
    every one is counted as a failed sync and an attempt."""
    before = source.status().sync_failures
    for _ in range(times):
        clock.advance(source.status().next_retry_in)
        assert synced(source) is False
        status = source.status()
        assert status.last_error is not None
        assert (status.last_sync, status.last_attempt) == (synced_at, clock.now)
    assert source.status().sync_failures == before + times


def test_a_revision_refused_whole_stops_the_last_sync_until_a_good_one_applies(
    remote: Remote, state: Path, clock: Clock
) -> None:
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    good = remote.commit()
    # Files may be 16 times --max-file-size: 64 KiB here, so 20 MB is refused whole.
    source = GitSource(GitOptions(remote.url, path="tasks"), state, clock=clock, max_file_size=4096)
    assert synced(source)
    synced_at = source.status().last_sync
    assert synced_at == clock.now

    remote.write("tasks/a.yaml", doc("a", "2 * * * *"))
    sparse_zeros(remote.work / "tasks" / "blob.bin", 20_000_000)
    refused = remote.commit()
    fails_while_fetching(source, clock, synced_at, 3)
    status = source.status()
    assert status.last_error is not None
    assert status.last_error.startswith(f"revision {refused[:12]} refused: ")
    assert (status.applied_revision, status.attempted_revision) == (good, refused)
    assert schedules(source) == {"default/a": "1 * * * *"}

    remote.rm("tasks/blob.bin")
    fixed = remote.commit()
    clock.advance(source.status().next_retry_in)
    assert synced(source)
    status = source.status()
    assert (status.applied_revision, status.last_error) == (fixed, None)
    assert status.last_sync == status.last_attempt == clock.now
    assert schedules(source) == {"default/a": "2 * * * *"}


def test_a_failed_checkout_stops_the_last_sync_and_going_back_to_the_applied_commit_ends_it(
    remote: Remote, state: Path, clock: Clock
) -> None:
    remote.write("a.yaml", doc("a"))
    good = remote.commit()
    source = source_for(remote, state, clock)
    assert synced(source)
    synced_at = clock.now

    # Fetched but not checked out here: a file name longer than any file system allows.
    blob = remote.git("hash-object", "-w", "a.yaml")
    remote.git("update-index", "--add", "--cacheinfo", f"100644,{blob},{'n' * 300}.yaml")
    remote.commit(stage=False)
    fails_while_fetching(source, clock, synced_at, 2)
    assert (source.status().last_error or "").startswith("checkout of ")

    # A force-push back to the commit in force: nothing to apply, the sync ends well.
    remote.git("reset", "--quiet", "--hard", good)
    remote.push("HEAD:refs/heads/main", force=True)
    clock.advance(source.status().next_retry_in)
    assert synced(source) is False  # no new revision
    status = source.status()
    assert (status.applied_revision, status.last_error) == (good, None)
    assert status.last_sync == status.last_attempt == clock.now


def test_an_ambiguous_ref_stops_the_last_sync(remote: Remote, state: Path, clock: Clock) -> None:
    remote.write("a.yaml", doc("a"))
    first = remote.commit(branch="release")
    source = source_for(remote, state, clock, ref="release")
    assert synced(source)
    synced_at = clock.now

    remote.git("tag", "release", first)
    remote.push("refs/tags/release")
    fails_while_fetching(source, clock, synced_at, 2)
    assert "is ambiguous" in (source.status().last_error or "")
    assert source.status().applied_revision == first
