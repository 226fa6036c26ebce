"""One folder given in two spellings (``tasks/shared`` and ``$PWD/tasks/shared``, or
``tasks/../tasks/shared``) is one root: read once, and, given under another root, its own, as
when both are spelled alike. Spellings are compared as ``os.path.abspath`` makes them, links
never followed; a spelling that would lead elsewhere through a link is kept as given."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.sources.rootpaths import closest_root, inner_roots, not_given, one_spelling

TASK = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: NAME}\n"
    'spec: {schedule: "0 0 * * *", command: {args: ["true"]}}\n'
)


@pytest.fixture
def tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "tasks" / "shared").mkdir(parents=True)
    (tmp_path / "tasks" / "shared" / "a.yaml").write_text(TASK.replace("NAME", "a"))
    (tmp_path / "tasks" / "b.yaml").write_text(TASK.replace("NAME", "b"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_closest_root_is_found_whatever_the_spelling(tasks: Path) -> None:
    outer, inner = Path("tasks"), tasks / "tasks" / "shared"
    assert closest_root([outer, inner], Path("tasks/shared/a.yaml")) == inner
    assert closest_root([inner, outer], Path("tasks/../tasks/b.yaml")) == outer
    assert closest_root([inner], Path("elsewhere/a.yaml")) is None
    assert inner_roots([outer, inner], outer) == [inner]
    assert inner_roots([outer, Path("tasks/.")], outer) == []  # itself, spelled otherwise
    assert not_given([inner], [Path("tasks/shared"), Path("tasks/other")]) == [Path("tasks/other")]


def test_a_root_given_twice_is_read_once_and_one_under_another_takes_its_spelling(
    tasks: Path,
) -> None:
    absolute = tasks / "tasks"
    assert one_spelling([Path("tasks"), absolute, Path("tasks/")]) == [Path("tasks")]
    assert one_spelling([absolute / "shared", Path("tasks")]) == [
        Path("tasks/shared"),
        Path("tasks"),
    ]
    file = Path("tasks/shared/a.yaml")
    assert one_spelling([file, Path("tasks/../tasks/shared")]) == [
        Path("tasks/../tasks/shared/a.yaml"),
        Path("tasks/../tasks/shared"),
    ]


def test_a_spelling_that_leads_elsewhere_through_a_link_is_kept(tasks: Path) -> None:
    # link/.. is, for the kernel, the parent of the folder the link leads to, not the current
    # folder: elsewhere/b.yaml respelled link/../elsewhere/b.yaml would be another file.
    for folder in (tasks / "elsewhere", tasks / "far" / "elsewhere"):
        folder.mkdir(parents=True)
        (folder / "b.yaml").write_text(str(folder))
    (tasks / "far" / "deep").mkdir()
    (tasks / "link").symlink_to(tasks / "far" / "deep")
    roots = [Path("elsewhere/b.yaml"), Path("link/../elsewhere")]
    assert Path("link/../elsewhere/b.yaml").read_text() != Path("elsewhere/b.yaml").read_text()
    assert one_spelling(roots) == roots


@pytest.mark.parametrize(
    ("roots", "read"),
    [
        (["tasks", "{here}/tasks/shared"], "2 files, 2 tasks"),
        (["{here}/tasks/shared", "tasks"], "2 files, 2 tasks"),
        (["tasks/shared/a.yaml", "tasks/../tasks/shared"], "1 file, 1 task"),
        (["tasks", "{here}/tasks"], "2 files, 2 tasks"),
    ],
)
def test_validate_reads_each_task_once(tasks: Path, roots: list[str], read: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", *(r.format(here=tasks) for r in roots)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, f"ok: {read}\n", "")
