"""A ``--git-ref`` is fetched only from the remote ref of exactly its full name. git reads the
source of a fetch refspec as an abbreviation (``refs/tags/v1`` is also ``refs/refs/tags/v1``,
``refs/heads/refs/tags/v1``, ...): once the exact ref is gone, a branch anyone can push under
such a name was fetched and applied in its place. Now the exact ref missing is "not found" at
every sync (tasks kept), a decoy's commit is not even downloaded, and the exact ref back is
followed again. Real git, as in test_git."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.sources import gitrefs, gitrepo
from reconciler.sources.git import GitSource
from tests.sources.test_git import (
    Clock,
    Remote,
    clock,
    doc,
    git,
    isolated_git,
    remote,
    schedules,
    source_for,
    state,
    synced,
)

__all__ = ["clock", "isolated_git", "remote", "state"]  # test_git's fixtures, used by name


def push_decoy(remote: Remote, name: str) -> str:
    """A commit that removes ``a`` and adds ``evil``, pushed as the remote ref ``name`` from a
    branch of its own (the working clone's main stays as it was)."""
    remote.git("checkout", "--quiet", "-b", "decoy")
    remote.rm("a.yaml")
    remote.write("evil.yaml", doc("evil"))
    remote.git("add", "--all")
    remote.git("commit", "--quiet", "-m", "decoy")
    remote.push(f"HEAD:{name}")
    sha = remote.git("rev-parse", "HEAD")
    remote.git("checkout", "--quiet", "main")
    return sha


def mirror_has(state: Path, sha: str) -> bool:
    (repo,) = state.glob("git/*/repo.git")
    try:
        git(f"--git-dir={repo}", "cat-file", "-e", f"{sha}^{{commit}}")
    except AssertionError:
        return False
    return True


def assert_missing_every_time(
    source: GitSource, ref: str, applied: str, state: Path, evil: str | None
) -> None:
    before = source.status().consecutive_failures
    for count in range(1, 4):  # the same at every sync: nothing flaps, the alert can fire
        assert synced(source) is False
        status = source.status()
        assert status.consecutive_failures == before + count  # none succeeded in between
        assert status.last_error is not None
        assert status.last_error.startswith(f"ref {ref!r} not found on remote (retrying in ")
        assert status.applied_revision == applied
        assert set(schedules(source)) == {"default/a"}
    if evil is not None:
        assert not mirror_has(state, evil)  # the decoy is not downloaded either


@pytest.mark.parametrize(
    ("ref", "decoy"),
    [
        ("refs/tags/v1", "refs/heads/refs/tags/v1"),
        ("refs/tags/v1", "refs/refs/tags/v1"),
        ("refs/tags/v1", "refs/remotes/refs/tags/v1"),
        ("v1", "refs/heads/refs/tags/v1"),
        ("v1", "refs/tags/refs/heads/v1"),
    ],
)
def test_a_deleted_tag_is_not_replaced_by_a_ref_ending_in_its_name(
    ref: str, decoy: str, remote: Remote, state: Path, clock: Clock
) -> None:
    remote.write("a.yaml", doc("a"))
    applied = remote.commit()
    remote.git("tag", "v1")
    remote.push("refs/tags/v1")
    source = source_for(remote, state, clock, ref=ref)
    assert synced(source)
    assert source.status().applied_revision == applied

    remote.push(":refs/tags/v1")
    evil = push_decoy(remote, decoy)
    assert_missing_every_time(source, ref, applied, state, evil)

    # The tag cut again (at another commit) is followed, the decoy still there. Made in the
    # remote itself: git push reads its destination as loosely, and would update the decoy.
    remote.write("b.yaml", doc("b"))
    recut = remote.commit()
    git("update-ref", "refs/tags/v1", recut, cwd=remote.bare)
    assert synced(source)
    assert source.status().applied_revision == recut
    assert set(schedules(source)) == {"default/a", "default/b"}


@pytest.mark.parametrize(
    ("ref", "decoy"),
    [("prod", "refs/heads/refs/heads/prod"), ("refs/heads/prod", "refs/heads/refs/heads/prod")],
)
def test_a_deleted_branch_is_not_replaced_by_a_branch_ending_in_its_name(
    ref: str, decoy: str, remote: Remote, state: Path, clock: Clock
) -> None:
    remote.write("a.yaml", doc("a"))
    applied = remote.commit(branch="prod")
    source = source_for(remote, state, clock, ref=ref)
    assert synced(source)

    remote.push(":refs/heads/prod")
    evil = push_decoy(remote, decoy)
    assert_missing_every_time(source, ref, applied, state, evil)

    remote.write("b.yaml", doc("b"))
    back = remote.commit()
    git("update-ref", "refs/heads/prod", back, cwd=remote.bare)  # as the tag's, above
    assert synced(source)
    assert source.status().applied_revision == back


@pytest.mark.parametrize("decoy", ["refs/heads/HEAD", "refs/tags/HEAD"])
def test_a_dangling_remote_head_is_not_replaced_by_a_ref_named_head(
    decoy: str, remote: Remote, state: Path, clock: Clock
) -> None:
    remote.write("a.yaml", doc("a"))
    applied = remote.commit()
    source = source_for(remote, state, clock)  # --git-ref HEAD: the remote's default branch
    assert synced(source)

    git("symbolic-ref", "HEAD", "refs/heads/gone", cwd=remote.bare)
    evil = push_decoy(remote, decoy)
    assert_missing_every_time(source, "HEAD", applied, state, evil)

    git("symbolic-ref", "HEAD", "refs/heads/main", cwd=remote.bare)
    assert synced(source) is False  # no new revision: the one in force is main's
    assert source.status().last_error is None
    assert source.status().applied_revision == applied


@pytest.mark.parametrize(
    ("ref", "exact", "decoy"),
    [
        ("refs/tags/v1", "refs/tags/v1", "refs/heads/refs/tags/v1"),
        ("v1", "refs/tags/v1", "refs/heads/refs/tags/v1"),
        ("HEAD", None, "refs/heads/HEAD"),
    ],
)
def test_what_the_fetch_took_is_checked_whatever_git_reads_a_name_as(
    ref: str,
    exact: str | None,
    decoy: str,
    remote: Remote,
    state: Path,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the negative refspecs (as if git read names in a way they miss), git fetches
    the decoy: FETCH_HEAD says which remote ref it was, and it is refused all the same."""
    monkeypatch.setattr(gitrefs, "ABBREVIATIONS", ())
    remote.write("a.yaml", doc("a"))
    applied = remote.commit()
    remote.git("tag", "v1")
    remote.push("refs/tags/v1")
    source = source_for(remote, state, clock, ref=ref)
    assert synced(source)

    if exact is None:
        git("symbolic-ref", "HEAD", "refs/heads/gone", cwd=remote.bare)
    else:
        remote.push(f":{exact}")
    evil = push_decoy(remote, decoy)
    # The first fetch may fail in git itself: its prune deletes the local ref the decoy's
    # update then expects ("cannot lock ref"). Failed all the same, and the tasks kept.
    assert synced(source) is False
    assert set(schedules(source)) == {"default/a"}
    assert_missing_every_time(source, ref, applied, state, None)
    assert mirror_has(state, evil)  # fetched (so this test shows the check), never applied


def test_fetch_head_notes_name_each_remote_ref_in_full() -> None:
    url = "file:///srv/it's here/repo"
    oids = [f"{n}" * 40 for n in "123456"]
    lines = [
        f"{oids[0]}\t\tbranch 'refs/tags/v1' of {url}",
        f"{oids[1]}\tnot-for-merge\ttag 'v1' of {url}",
        f"{oids[2]}\t\tremote-tracking branch 'x/HEAD' of {url}",
        f"{oids[3]}\t\t'refs/refs/tags/v1' of {url}",
        f"{oids[4]}\t\tbranch 'it's' of {url}",
        f"{oids[5]}\t\t{url}",
    ]
    assert gitrefs.fetched("\n".join(lines) + "\n") == {
        "refs/heads/refs/tags/v1": oids[0],
        "refs/tags/v1": oids[1],
        "refs/remotes/x/HEAD": oids[2],
        "refs/refs/tags/v1": oids[3],
        "refs/heads/it's": oids[4],
        "HEAD": oids[5],
    }
    # A URL that looks like a note makes HEAD look missing, never like another ref.
    assert gitrefs.fetched(f"{oids[0]}\t\tbranch 'x' of y\n") == {"refs/heads/x": oids[0]}


@pytest.mark.parametrize(
    ("exact", "decoy"),
    [
        ("refs/heads/cafe", "refs/tags/refs/remotes/origin/cafe"),
        ("refs/tags/cafe", "refs/tags/refs/tags/cafe"),
    ],
)
def test_a_name_that_could_be_a_sha_reads_only_its_own_branch_or_tag(
    exact: str, decoy: str, remote: Remote, state: Path, clock: Clock
) -> None:
    """Such a name fetches every branch and tag (by pattern, which git matches literally), and
    the names it reads in the mirror are read exactly too: git's rev-parse would take
    refs/tags/refs/remotes/origin/cafe, a tag anyone can push, for refs/remotes/origin/cafe."""
    remote.write("a.yaml", doc("a"))
    applied = remote.commit()
    git("update-ref", exact, applied, cwd=remote.bare)
    source = source_for(remote, state, clock, ref="cafe")
    assert synced(source)
    assert source.status().applied_revision == applied

    git("update-ref", "-d", exact, cwd=remote.bare)
    push_decoy(remote, decoy)
    for _ in range(2):
        assert synced(source) is False
        status = source.status()
        assert status.last_error is not None
        assert status.last_error.startswith("ref 'cafe' not found on remote (retrying in ")
        assert status.applied_revision == applied
        assert set(schedules(source)) == {"default/a"}


@pytest.mark.parametrize(
    ("said", "missing"),
    [
        ("couldn't find remote ref refs/tags/main", "refs/tags/main"),
        # Protocol v0 (ssh to a server that drops GIT_PROTOCOL): the hang-up follows at times.
        (
            "couldn't find remote ref refs/tags/main; the remote end hung up unexpectedly",
            "refs/tags/main",
        ),
        ("couldn't find remote ref refs/tags/a;b", "refs/tags/a;b"),  # ";" may be in a name
    ],
)
def test_the_missing_ref_is_read_whole_whatever_follows_it(said: str, missing: str) -> None:
    found = gitrepo._MISSING_REF.search(said)
    assert found is not None
    assert found.group(1) == missing
