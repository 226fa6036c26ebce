"""The files kept under places not read (links not entered, submodules, folders that cannot be
listed), found by a set of those places tested against each file's folders, not by comparing
each file with every place: 1 500 folders turned into submodules cost 26 s a refresh. These
tests pin what the check decides (the cost is in the review's report, not asserted here), and
that the git source looks at each folder once, however many files it held."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import reconciler.sources.gitfiles as gitfiles
from reconciler.sources.files import DirectorySource
from reconciler.sources.gitfiles import SUBMODULE, repository_files
from reconciler.sources.unread import under_any
from tests.sources.test_git import doc

FOLDERS = 200


def keys(source: DirectorySource) -> set[str]:
    return {d.key for d in source.definitions()}


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_under_any_compares_folders_not_spellings() -> None:
    places = {str(p) for p in (Path("/r/team1"), Path("/r/a/b"), Path("rel/x"))}
    assert under_any(Path("/r/team1/t.yaml"), places)
    assert under_any(Path("/r/team1"), places)  # a place itself (a root gone, a file's path)
    assert under_any(Path("/r/a/b/c/d/t.yaml"), places)
    assert under_any(Path("rel/x/t.yaml"), places)
    assert not under_any(Path("/r/team10/t.yaml"), places)  # a longer name is another folder
    assert not under_any(Path("/r/a/t.yaml"), places)  # above a place is not under it
    assert not under_any(Path("/rel/x/t.yaml"), places)  # absolute and relative differ
    assert not under_any(Path("/r/team1/t.yaml"), set())
    assert under_any(Path("t.yaml"), {"."})  # a relative root, as Path("t.yaml").parents
    assert under_any(Path("/r/t.yaml"), {"/"})
    assert not under_any(Path("."), {"/"})


def test_many_folders_turned_into_links_to_nothing_keep_exactly_their_tasks(
    tmp_path: Path,
) -> None:
    root = tmp_path / "tasks"
    for f in range(FOLDERS):
        write(root / f"team{f}" / "a.yaml", doc(f"a{f}"))
        write(root / f"team{f}" / "deep" / "b.yaml", doc(f"b{f}"))
    source = DirectorySource([root], max_tasks=10_000)
    source.refresh()
    assert len(keys(source)) == 2 * FOLDERS

    # team1..team9 and team100..team199 become links to nothing; team10..team99 (whose
    # names start as those of the links do) are removed and team0 stays.
    linked = {f for f in range(1, FOLDERS) if not 10 <= f < 100}
    for f in range(1, FOLDERS):
        shutil.rmtree(root / f"team{f}")
        if f in linked:
            (root / f"team{f}").symlink_to(tmp_path / "nowhere")
    source.refresh()
    kept = {f"default/{k}{f}" for f in linked | {0} for k in "ab"}
    assert keys(source) == kept
    assert sorted(source.unread) == sorted(root / f"team{f}" for f in linked)
    assert len(source.errors()) == len(linked)

    # A link removed lets its tasks go, and only its own.
    (root / "team1").unlink()
    source.refresh()
    assert keys(source) == kept - {"default/a1", "default/b1"}


def test_many_folders_turned_into_submodules_keep_exactly_their_tasks(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    root = repo / "tasks"
    (repo / ".git").parent.mkdir(parents=True)
    (repo / ".git").write_text("gitdir: elsewhere\n")
    for f in range(FOLDERS):
        write(root / f"team{f}" / "a.yaml", doc(f"a{f}"))
    source = repository_files([root], repo, max_tasks=10_000)
    source.refresh()
    # Odd folders become empty folders (as git checks out a submodule); even ones go.
    for f in range(FOLDERS):
        shutil.rmtree(root / f"team{f}")
        if f % 2:
            (root / f"team{f}").mkdir()
    source.refresh()
    assert keys(source) == {f"default/a{f}" for f in range(1, FOLDERS, 2)}
    assert [e.message for e in source.errors()] == [SUBMODULE] * (FOLDERS // 2)


def test_the_git_source_looks_at_a_folder_once_for_all_its_files_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A commit deleting 10 000 files of a folder that stays listed that folder 9 999 times.
    repo = tmp_path / "repo"
    team = repo / "tasks" / "team"
    team.mkdir(parents=True)
    (repo / ".git").write_text("gitdir: elsewhere\n")
    for i in range(FOLDERS):
        write(team / f"f{i}.yaml", doc(f"t{i}"))
    source = repository_files([repo / "tasks"], repo, max_tasks=10_000)
    source.refresh()
    for i in range(1, FOLDERS):
        (team / f"f{i}.yaml").unlink()
    looked: list[Path] = []
    empty_folder = gitfiles._empty_folder

    def counted(folder: Path) -> bool:
        looked.append(folder)
        return empty_folder(folder)

    monkeypatch.setattr(gitfiles, "_empty_folder", counted)
    source.refresh()
    assert looked == [team]
    assert keys(source) == {"default/t0"}
    assert source.errors() == []
