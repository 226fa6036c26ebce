"""A crafted commit whose ``tasks/`` tree holds entries git never writes (``..``, ``.GIT``, a
``git~1`` folder): ``git checkout`` says ``error: invalid path`` and exits 0, and the revision
was applied with no word of the files it never wrote. Each is a definition error at its path,
after a restart too, and the rest of the revision is read. Real git, as in test_git; trees are
written as raw bytes (``hash-object --literally``), as a client can push them. And a
``--git-path`` into git's own ``.git`` is refused at start, where it failed every pass as a link
into it though there was no link."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.sources.git import GitSource
from reconciler.sources.gitfiles import (
    MAX_NEVER_WRITTEN,
    MAX_SHOWN_PATH,
    NEVER_WRITTEN,
    NEVER_WRITTEN_CUT,
    more_never_written,
)
from reconciler.sources.gitnames import clean_path, refused_name, refused_part
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
from tests.sources.test_git_duplicate_entries import blob, git_out, tree

__all__ = ["clock", "isolated_git", "remote", "state"]  # fixtures shared with test_git


def errors_of(source: GitSource) -> dict[str, str]:
    return {e.location.path: e.message for e in source.errors()}


def test_entries_git_never_writes_are_errors_at_their_paths(
    remote: Remote, state: Path, clock: Clock
) -> None:
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    good = remote.commit()
    source = source_for(remote, state, clock, path="tasks")
    assert synced(source)

    task = blob(remote, doc("evil", "2 * * * *").encode())
    kept = blob(remote, doc("a", "3 * * * *").encode())
    inside = tree(remote, [("100644", "b.yaml", task)])
    hostile = [
        ("100644", "..", task),
        ("100644", ".GIT", task),
        ("100644", "a.yaml", kept),
        ("40000", "git~1", inside),  # NTFS's short name of .git: git writes nothing under it
        ("40000", "ok", inside),
    ]
    root = tree(remote, [("40000", "tasks", tree(remote, hostile))])
    crafted = git_out(remote, "commit-tree", "-p", good, "-m", "crafted", root)
    remote.push(f"{crafted}:refs/heads/main")
    assert synced(source), source.status().last_error
    assert source.status().applied_revision == crafted
    assert schedules(source) == {"default/a": "3 * * * *", "default/evil": "2 * * * *"}
    never = {"tasks/..": NEVER_WRITTEN, "tasks/.GIT": NEVER_WRITTEN, "tasks/git~1": NEVER_WRITTEN}
    assert errors_of(source) == never
    assert {e.location.revision for e in source.errors()} == {crafted}

    # The revision in force after a restart is read from disk, with the same errors.
    restarted = source_for(remote, state, clock, path="tasks")
    restarted.refresh()
    assert errors_of(restarted) == never

    remote.write("tasks/a.yaml", doc("a", "4 * * * *"))
    fixed = remote.commit(force=True)
    assert synced(restarted)
    assert restarted.status().applied_revision == fixed
    assert errors_of(restarted) == {}
    assert sorted(p.name for p in restarted.worktrees.iterdir()) == [fixed]  # its record too


def test_a_link_into_a_name_git_never_writes_leaves_the_rest_checked_out(
    remote: Remote, state: Path, clock: Clock
) -> None:
    """A link's target is asked of git as a pathspec: one git never writes matched nothing,
    and failed the whole checkout."""
    link = blob(remote, b"../shared/.git/b.yaml")
    task = blob(remote, doc("a").encode())
    tasks = tree(remote, [("100644", "a.yaml", task), ("120000", "l.yaml", link)])
    dotgit = tree(remote, [("100644", "b.yaml", task)])
    shared = tree(remote, [("40000", ".git", dotgit)])
    root = tree(remote, [("40000", "shared", shared), ("40000", "tasks", tasks)])
    crafted = git_out(remote, "commit-tree", "-m", "crafted", root)
    remote.push(f"{crafted}:refs/heads/main")
    source = source_for(remote, state, clock, path="tasks")
    assert synced(source), source.status().last_error
    assert schedules(source) == {"default/a": "* * * * *"}
    assert list(errors_of(source)) == ["tasks/l.yaml"]  # a link to nothing, as the reading says


def test_many_entries_git_never_writes_are_named_up_to_a_bound(
    remote: Remote, state: Path, clock: Clock
) -> None:
    """10 000 names of 4 000 characters made a 40 MB record beside the worktree, an error and a
    log line each (21.5 MB of log): the first ones are named, cut, and one error says how many
    more there are."""
    task = blob(remote, doc("a").encode())
    long = [f".git:{i:04d}".ljust(4 * MAX_SHOWN_PATH, "A") for i in range(MAX_NEVER_WRITTEN + 3)]
    entries = [("100644", name, task) for name in [".GIT", "a.yaml", *long]]
    root = tree(remote, [("40000", "tasks", tree(remote, entries))])
    crafted = git_out(remote, "commit-tree", "-m", "crafted", root)
    remote.push(f"{crafted}:refs/heads/main")
    source = source_for(remote, state, clock, path="tasks")
    assert synced(source), source.status().last_error
    assert schedules(source) == {"default/a": "* * * * *"}
    shown = {f"tasks/{name}"[:MAX_SHOWN_PATH]: NEVER_WRITTEN_CUT for name in long[:99]}
    assert errors_of(source) == {
        "tasks/.GIT": NEVER_WRITTEN,
        **shown,
        "tasks": more_never_written(4),
    }
    record = source.worktrees / f"{crafted}.refused"
    assert record.stat().st_size < MAX_NEVER_WRITTEN * (MAX_SHOWN_PATH + 2) + 10


def test_a_git_path_of_entries_git_never_writes_alone_holds_no_task_file(
    remote: Remote, state: Path, clock: Clock
) -> None:
    """Its pathspec matched nothing: the checkout failed, and every sync after it, for ever.
    Now git writes no folder there: a revision without ``--git-path``, refused while the
    revision in force has tasks (``gitempty``), which stay."""
    remote.write("tasks/a.yaml", doc("a"))
    good = remote.commit()
    source = source_for(remote, state, clock, path="tasks")
    assert synced(source)
    task = blob(remote, doc("evil").encode())
    root = tree(remote, [("40000", "tasks", tree(remote, [("100644", ".GIT", task)]))])
    crafted = git_out(remote, "commit-tree", "-p", good, "-m", "crafted", root)
    remote.push(f"{crafted}:refs/heads/main")
    assert not synced(source)
    status = source.status()
    assert (status.applied_revision, status.attempted_revision) == (good, crafted)
    assert status.last_error is not None
    assert status.last_error.startswith(
        f"revision {crafted[:12]} refused: --git-path 'tasks' does not exist in it"
    )
    assert schedules(source) == {"default/a": "* * * * *"}
    assert errors_of(source) == {}


@pytest.mark.parametrize(
    ("name", "link", "refused"),
    [
        ("", False, True),
        (".", False, True),
        ("..", False, True),
        (".git", False, True),
        (".gIt", False, True),
        (".git. .", False, True),
        (".git::$INDEX_ALLOCATION", False, True),
        ("GIT~1", False, True),
        ("x\\.git", False, True),
        (".git\\x", False, True),
        ("git~2", False, False),
        (" .git", False, False),
        (".gitx", False, False),
        ("...", False, False),
        (".gitmodules", False, False),
        (".gitmodules", True, True),
        ("GITMOD~4 ", True, True),
        ("gitmod~5", True, False),
        (".gitattributes", True, False),
    ],
)
def test_the_names_git_refuses(name: str, link: bool, refused: bool) -> None:
    assert refused_name(name, link=link) is refused


def test_the_refused_part_of_a_path_is_up_to_its_first_refused_name() -> None:
    assert refused_part("tasks/../x.yaml") == "tasks/.."
    assert refused_part("tasks/.GIT/a/.git") == "tasks/.GIT"
    assert refused_part("tasks/a/.gitmodules", link=True) == "tasks/a/.gitmodules"
    assert refused_part(".gitmodules/a", link=True) is None
    assert refused_part("tasks/a.yaml") is None


@pytest.mark.parametrize("path", [".git", "./.git", ".GIT/", "tasks/.Git/x", "git~1", ".git. "])
def test_a_git_path_into_gits_own_dotgit_is_refused_at_start(
    path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Accepted, it failed every pass as "a symbolic link that leads to git's own .git", though
    there was no link: no checkout holds one."""
    with pytest.raises(ValueError, match=r"must not lead into git's own \.git"):
        clean_path(path)
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "x", "--git-path", path])
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == (
        "crontask run: error: argument --git-path: git path must not lead into git's own .git,"
        f" which no checkout holds: {path!r}"
    )


def test_a_git_path_with_dotgit_in_a_longer_name_is_taken() -> None:
    assert [clean_path(p) for p in ("./.github/tasks/", ".gitx", "a/git~2")] == [
        ".github/tasks",
        ".gitx",
        "a/git~2",
    ]
