"""A folder given relative and absolute (``tasks`` and ``$PWD/tasks``) is one root, and a folder
given under another in the other spelling (``tasks`` and ``$PWD/tasks/shared``) is its own root
exactly as when both are spelled alike (``rootpaths.one_spelling``, from ``existing_paths``).
Nothing else is taken for one path: ``..`` is never taken off lexically (``link/..`` is the
folder above where ``link`` leads), nor are two links to one folder merged: such spellings are
read as given, and a task found twice is reported defined twice, never a folder left unread.
Taking ``..`` off lexically (a first fix) read ``elsewhere`` twice for ``elsewhere
link/../elsewhere`` and dropped a task without a word."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli.given_paths import existing_paths
from reconciler.sources.files import DirectorySource
from reconciler.sources.rootpaths import one_spelling
from tests.controller.test_reconcile import doc


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tasks/b.yaml and tasks/shared/a.yaml; elsewhere/c.yaml and far/elsewhere/d.yaml, and
    link -> far/deep (so link/../elsewhere is far/elsewhere, not elsewhere)."""
    for folder, name in [
        ("tasks", "b"),
        ("tasks/shared", "a"),
        ("elsewhere", "c"),
        ("far/elsewhere", "d"),
    ]:
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / f"{name}.yaml").write_text(doc(name))
    (tmp_path / "far" / "deep").mkdir()
    (tmp_path / "link").symlink_to(Path("far") / "deep")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def validate(*roots: str, cwd: Path) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", *roots],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    return done.returncode, done.stdout, done.stderr


def test_a_folder_under_another_in_another_spelling_is_read_once(here: Path) -> None:
    inner = str(here / "tasks/shared")
    for roots in [("tasks", inner), (inner, "tasks")]:
        assert validate(*roots, cwd=here) == (0, "ok: 2 files, 2 tasks\n", ""), roots


def test_a_folder_given_in_many_spellings_is_read_once(here: Path) -> None:
    roots = ["tasks", "./tasks/", str(here / "tasks"), "tasks//", "tasks"]
    assert validate(*roots, cwd=here) == (0, "ok: 2 files, 2 tasks\n", "")
    assert existing_paths(roots) == [Path("tasks")]


def test_a_spelling_through_a_link_that_leads_elsewhere_is_another_folder(here: Path) -> None:
    """link/../elsewhere is far/elsewhere: both folders are read, both tasks reported."""
    assert validate("elsewhere", "link/../elsewhere", cwd=here) == (0, "ok: 2 files, 2 tasks\n", "")
    assert existing_paths(["elsewhere", "link/../elsewhere"]) == [
        Path("elsewhere"),
        Path("link/../elsewhere"),
    ]


def test_a_spelling_with_dots_or_links_is_read_as_given(here: Path) -> None:
    """``tasks/shared/..`` and a link to tasks are the same folder, but not the same spelling:
    read as given, the tasks found twice are said so (exit 1), nothing is left unread."""
    (here / "alias").symlink_to("tasks")
    for other in ["tasks/shared/..", "alias", "up/../tasks/shared"]:
        if other.startswith("up"):
            (here / "up").symlink_to("far")
        code, out, err = validate("tasks", other, cwd=here)
        assert code == 1, (other, out, err)
        assert "defined more than once" in out + err, (other, out, err)
        assert existing_paths(["tasks", other]) == [Path("tasks"), Path(other)]


def test_a_missing_inner_spelling_through_a_link_is_refused(here: Path) -> None:
    # link/../tasks/shared is far/tasks/shared: not there, refused as a missing path.
    missing = "crontask: no such file or directory: link/../tasks/shared\n"
    assert validate("tasks", "link/../tasks/shared", cwd=here) == (2, "", missing)
    # There, it is another folder: read as its own root, beside tasks/shared.
    (here / "far" / "tasks" / "shared").mkdir(parents=True)
    (here / "far" / "tasks" / "shared" / "e.yaml").write_text(doc("e"))
    assert validate("tasks", "link/../tasks/shared", cwd=here) == (0, "ok: 3 files, 3 tasks\n", "")


def test_a_linked_inner_folder_in_the_absolute_spelling_is_not_reported_unread(
    here: Path,
) -> None:
    """tasks/linked -> ../elsewhere, given as $PWD/tasks/linked: it is the link the walk of
    tasks finds, given as a root, so read as one and not said "not entered", as when spelled
    tasks/linked."""
    (here / "tasks" / "linked").symlink_to(Path("..") / "elsewhere")
    for inner in ["tasks/linked", str(here / "tasks/linked")]:
        assert validate("tasks", inner, cwd=here) == (0, "ok: 3 files, 3 tasks\n", ""), inner


def test_an_inner_folder_gone_later_holds_as_when_spelled_alike(here: Path) -> None:
    """``crontask run``'s source, with the roots ``existing_paths`` gives it: the inner folder
    moved away keeps its task, said of that folder alone, in either spelling."""
    said = []
    for inner in ["tasks/shared", str(here / "tasks/shared")]:
        source = DirectorySource(existing_paths(["tasks", inner]), guard_empty=True)
        source.refresh(None)
        assert {d.key for d in source.definitions()} == {"default/a", "default/b"}
        shutil.move(here / "tasks/shared", here / "shared.moved")
        assert source.refresh(None) == set()
        assert {d.key for d in source.definitions()} == {"default/a", "default/b"}
        said.append(sorted((e.location.path, e.kind) for e in source.errors()))
        shutil.move(here / "shared.moved", here / "tasks/shared")
    assert said[0] == said[1]
    assert [path for path, _ in said[0]] == ["tasks/shared"]


def test_the_respelling_is_the_path_given_in_every_order(here: Path) -> None:
    inner = here / "tasks/shared"
    for roots in (["tasks", str(inner)], [str(inner), "tasks"]):
        spelled = one_spelling([Path(r) for r in roots])
        assert sorted(map(str, spelled)) == ["tasks", "tasks/shared"]
        assert [p.absolute() for p in spelled] == [Path(r).absolute() for r in roots]


def test_the_shells_current_folder_through_a_link_is_one_spelling(here: Path) -> None:
    """$PWD names the current folder through a link (a home folder that is one): ``tasks``
    beside ``$PWD/tasks/shared`` is still one folder and its inner one (the process's own
    current folder is the real one, which is all ``Path.absolute`` knows)."""
    (here / "logical").symlink_to(here)
    shell = here / "logical"
    inner = str(shell / "tasks/shared")
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "tasks", inner, str(shell / "tasks")],
        cwd=shell,
        env={**os.environ, "PWD": str(shell)},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok: 2 files, 2 tasks\n", "")


def test_a_stale_shell_folder_is_not_taken_for_the_current_one(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$PWD of another folder (a process that changed folder without the shell) is not used:
    a root under it is read as given."""
    (here / "elsewhere" / "tasks").mkdir()
    monkeypatch.setenv("PWD", str(here / "elsewhere"))
    roots = [Path("tasks"), here / "elsewhere" / "tasks"]
    assert one_spelling(roots) == roots
    monkeypatch.setenv("PWD", str(here / "link" / ".." / "tasks"))  # not a plain spelling
    assert one_spelling([Path("shared"), here / "tasks" / "shared"]) == [
        Path("shared"),
        here / "tasks" / "shared",
    ]
