"""A folder or git source holds at most ``max_tasks`` tasks (``sources.taskbound``): a file
that would take it past them is refused as a broken file is, and read again once there is
room. The git cases use real repositories."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.sources.files import DirectorySource
from reconciler.sources.filestate import FileState, Signature
from reconciler.sources.git import GitOptions, GitSource
from reconciler.sources.limits import PARALLEL_MIN_FILES
from tests.helpers import crontask_cli
from tests.sources.test_files import doc, keys, write
from tests.sources.test_git import Clock, Remote, isolate_git, schedules, synced
from tests.sources.test_git import doc as git_doc

ROOT = Path(__file__).resolve().parents[2]


def docs(*names: str, schedule: str = "* * * * *") -> str:
    return "---\n".join(doc(name, schedule) for name in names)


def errors(source: DirectorySource | GitSource) -> list[str]:
    return sorted(str(e) for e in source.errors())


def test_a_new_file_past_the_bound_is_refused_whole_and_the_others_are_read(
    tmp_path: Path,
) -> None:
    write(tmp_path / "a.yaml", docs("a1", "a2"))
    write(tmp_path / "b.yaml", docs("b1", "b2"))
    write(tmp_path / "c.yaml", docs("c1"))
    source = DirectorySource([tmp_path], max_tasks=3)
    source.refresh()
    # In path order: a (2), b would make 4: refused whole, c (1) fits.
    assert set(keys(source)) == {"default/a1", "default/a2", "default/c1"}
    assert errors(source) == [
        f"{tmp_path}/b.yaml:1:1: declares 2 tasks, which would take this source to 4 tasks, "
        "past its bound of 3 (--max-tasks): not applied; none is added"
    ]


def test_an_edit_past_the_bound_keeps_the_files_tasks_and_a_fix_applies(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", docs("a1", schedule="1 * * * *"))
    write(tmp_path / "b.yaml", docs("b1"))
    source = DirectorySource([tmp_path], max_tasks=3)
    source.refresh()
    a = write(tmp_path / "a.yaml", docs("a1", "a2", "a3", schedule="2 * * * *"))
    assert source.refresh([str(a)]) == {"default/a1", "default/a2", "default/a3"}
    # The edit is refused whole (a1 keeps its schedule), and a1 carries the error, as under
    # any broken edit.
    assert keys(source) == {"default/a1": "1 * * * *", "default/b1": "* * * * *"}
    (a1,) = [d for d in source.definitions() if d.key == "default/a1"]
    assert a1.error is not None
    assert "past its bound of 3 (--max-tasks)" in a1.error
    assert "the tasks it defined before are kept" in a1.error
    write(tmp_path / "a.yaml", docs("a1", "a2", schedule="2 * * * *"))
    source.refresh([str(a)])
    assert keys(source) == {
        "default/a1": "2 * * * *",
        "default/a2": "2 * * * *",
        "default/b1": "* * * * *",
    }
    assert errors(source) == []


def test_a_refused_file_is_read_again_once_another_file_makes_room(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", docs("a1", "a2"))
    write(tmp_path / "b.yaml", docs("b1", "b2"))
    source = DirectorySource([tmp_path], max_tasks=3)
    source.refresh()
    assert set(keys(source)) == {"default/a1", "default/a2"}
    # The event names a.yaml only: b.yaml has not changed, and is applied all the same.
    a = write(tmp_path / "a.yaml", docs("a1"))
    assert source.refresh([str(a)]) == {"default/a1", "default/a2", "default/b1", "default/b2"}
    assert set(keys(source)) == {"default/a1", "default/b1", "default/b2"}
    assert errors(source) == []
    # Deleting a file makes room the same way, and a refusal lasts only while there is none.
    write(tmp_path / "c.yaml", docs("c1"))
    source.refresh()
    assert "c.yaml:1:1: declares 1 task" in errors(source)[0]
    (tmp_path / "b.yaml").unlink()
    source.refresh([str(tmp_path / "b.yaml")])
    assert set(keys(source)) == {"default/a1", "default/c1"}
    assert errors(source) == []


def test_tasks_moved_between_files_in_one_change_are_not_refused(tmp_path: Path) -> None:
    """The file read first gains what the file read later loses: at the bound, neither the
    same keys moved nor other keys in their place are refused once the pass is over."""
    write(tmp_path / "b.yaml", docs("b1", "b2", "b3"))
    source = DirectorySource([tmp_path], max_tasks=3)
    source.refresh()
    write(tmp_path / "a.yaml", docs("b1", "new1"))
    write(tmp_path / "b.yaml", docs("b2"))
    source.refresh()
    assert set(keys(source)) == {"default/b1", "default/b2", "default/new1"}
    assert errors(source) == []


def test_every_definition_is_held_so_a_repeated_key_counts_each_time(tmp_path: Path) -> None:
    """The bound is on memory: a file that repeats one task 6 800 times holds 6 800
    definitions (a conflict, reported), not one."""
    write(tmp_path / "a.yaml", docs("a1", "a2"))
    write(tmp_path / "b.yaml", docs(*["same"] * 50))
    source = DirectorySource([tmp_path], max_tasks=10)
    source.refresh()
    assert set(keys(source)) == {"default/a1", "default/a2"}
    assert any("b.yaml:1:1: declares 50 tasks" in e for e in errors(source))


def broken(*names: str) -> str:
    """Documents that name their keys, with a schedule that does not validate."""
    return "---\n".join(doc(name, "not a schedule") for name in names)


def test_tasks_kept_for_a_broken_document_count_against_the_bound(tmp_path: Path) -> None:
    """Round after round, a file's tasks go, broken documents name them (so they are kept,
    see sources.adrift) and as many new ones come: the source stays within its bound."""
    write(tmp_path / "gen0.yaml", docs(*[f"g0-{i}" for i in range(10)]))
    source = DirectorySource([tmp_path], max_tasks=10)
    source.refresh()
    for gen in range(1, 4):
        (tmp_path / f"gen{gen - 1}.yaml").unlink()
        write(tmp_path / f"broken{gen}.yaml", broken(*[f"g{gen - 1}-{i}" for i in range(10)]))
        write(tmp_path / f"gen{gen}.yaml", docs(*[f"g{gen}-{i}" for i in range(10)]))
        source.refresh()
        assert len(source.definitions()) <= 10
    # The first round's tasks are kept (nothing running is removed), the new ones refused.
    assert set(keys(source)) == {f"default/g0-{i}" for i in range(10)}


def test_a_broken_document_keeps_no_task_past_the_bound(tmp_path: Path) -> None:
    """The file goes in one pass, the broken document naming its tasks comes in the next,
    and another file took the room in between: what no longer fits is not kept."""
    clock = [0.0]
    write(tmp_path / "a.yaml", docs("a1", "a2"))
    source = DirectorySource([tmp_path], max_tasks=3, clock=lambda: clock[0])
    source.refresh()
    (tmp_path / "a.yaml").unlink()
    source.refresh([str(tmp_path / "a.yaml")])
    b = write(tmp_path / "b.yaml", docs("b1", "b2"))
    source.refresh([str(b)])
    c = write(tmp_path / "c.yaml", broken("a1", "a2"))
    source.refresh([str(c)])
    assert set(keys(source)) == {"default/a1", "default/b1", "default/b2"}


def test_tasks_moved_into_a_file_are_not_refused_for_one_a_broken_document_keeps(
    tmp_path: Path,
) -> None:
    """At the bound, one change moves a1..a5 into b.yaml and names a1 in a broken document:
    b.yaml, refused for the moment, takes a1 back from the broken document when it is read
    again, and none of the tasks that ran is removed."""
    moved, kept = [f"a{i}" for i in range(1, 6)], [f"b{i}" for i in range(1, 6)]
    write(tmp_path / "a.yaml", docs(*moved))
    write(tmp_path / "b.yaml", docs(*kept))
    source = DirectorySource([tmp_path], max_tasks=10)
    source.refresh()
    (tmp_path / "a.yaml").unlink()
    write(tmp_path / "b.yaml", docs(*kept, *moved))
    write(tmp_path / "c.yaml", broken("a1"))
    source.refresh()
    assert set(keys(source)) == {f"default/{name}" for name in moved + kept}
    assert not any("--max-tasks" in e for e in errors(source))


def test_a_refused_file_is_parsed_again_only_once_room_was_made(tmp_path: Path) -> None:
    """Waiting for room costs nothing: passes that free none do not parse it again."""
    write(tmp_path / "a.yaml", docs("a1", "a2"))
    write(tmp_path / "b.yaml", docs("b1", "b2"))
    source = DirectorySource([tmp_path], max_tasks=3)
    source.refresh()
    parsed: list[Path] = []
    read = source._read

    def counted(path: Path, signature: Signature, before: FileState | None) -> FileState | None:
        parsed.append(path)
        return read(path, signature, before)

    source._read = counted  # type: ignore[method-assign]
    for name in ("c", "d", "e"):
        write(tmp_path / f"{name}.yaml", "# not a task\n")
        source.refresh([str(tmp_path / f"{name}.yaml")])
    assert tmp_path / "b.yaml" not in parsed
    a = write(tmp_path / "a.yaml", docs("a1"))
    source.refresh([str(a)])
    assert parsed.count(tmp_path / "b.yaml") == 1
    assert set(keys(source)) == {"default/a1", "default/b1", "default/b2"}


def test_a_refused_file_under_a_vanished_root_keeps_its_tasks(tmp_path: Path) -> None:
    """Room that appears elsewhere does not make a refused file's tasks go with its root:
    an unmounted path keeps what it defined, refused edit or not (even with --allow-empty)."""
    r1, r2 = tmp_path / "r1", tmp_path / "r2"
    write(r1 / "x.yaml", docs("x1", "x2"))
    write(r2 / "y.yaml", docs("y1", "y2", "y3"))
    source = DirectorySource([r1, r2], max_tasks=5)
    source.refresh()
    x = write(r1 / "x.yaml", docs("x1", "x2", "x3", "x4"))
    source.refresh([str(x)])
    shutil.rmtree(r1)
    source.refresh()
    write(r2 / "y.yaml", docs("y1"))
    source.refresh()
    assert set(keys(source)) == {"default/x1", "default/x2", "default/y1"}


def test_a_restart_refuses_the_files_refused_before_it(tmp_path: Path) -> None:
    """The refused file is read last after a restart too: the file that was in force stays,
    and the refused one is refused again. What it defined before its change is gone with its
    old text, as a broken file's is."""
    folder, record = tmp_path / "tasks", tmp_path / "state" / "refused-files.json"
    write(folder / "a.yaml", docs("a0", "a1"))
    write(folder / "z.yaml", docs("z0", "z1"))
    first = DirectorySource([folder], max_tasks=4, refused_record=record)
    first.refresh()
    a = write(folder / "a.yaml", docs("a0", "a1", "a2", "a3"))
    first.refresh([str(a)])
    assert set(keys(first)) == {"default/a0", "default/a1", "default/z0", "default/z1"}
    restarted = DirectorySource([folder], max_tasks=4, refused_record=record)
    restarted.refresh()
    assert set(keys(restarted)) == {"default/z0", "default/z1"}
    assert "a.yaml:1:1: declares 4 tasks" in errors(restarted)[0]
    # Once it fits, the record says so too: the next restart reads in path order again.
    write(folder / "a.yaml", docs("a0", "a1"))
    restarted.refresh([str(a)])
    assert json.loads(record.read_text()) == []
    again = DirectorySource([folder], max_tasks=4, refused_record=record)
    again.refresh()
    assert set(keys(again)) == {"default/a0", "default/a1", "default/z0", "default/z1"}


@pytest.fixture
def git_isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


@pytest.mark.usefixtures("git_isolated")
def test_a_commit_past_the_bound_keeps_the_tasks_of_the_files_it_would_grow(
    tmp_path: Path,
) -> None:
    """A hostile commit that declares far more tasks than the source holds: the files past the
    bound are refused, each keeping what it defined at the revision before, and the files
    that fit are applied, as for a commit with broken files."""
    remote, state = Remote(tmp_path), tmp_path / "state"
    remote.write("tasks/a.yaml", git_doc("a", "1 * * * *"))
    remote.write("tasks/b.yaml", git_doc("b", "2 * * * *"))
    remote.commit()
    source = GitSource(GitOptions(remote.url, path="tasks"), state, clock=Clock(), max_tasks=4)
    assert synced(source)
    many = "---\n".join(git_doc(f"flood-{i}") for i in range(500))
    remote.write("tasks/a.yaml", git_doc("a", "3 * * * *"))
    remote.write("tasks/b.yaml", git_doc("b", "4 * * * *") + "---\n" + many)
    remote.write("tasks/c.yaml", many.replace("flood-", "more-"))
    sha = remote.commit()
    assert synced(source)
    assert schedules(source) == {"default/a": "3 * * * *", "default/b": "2 * * * *"}
    assert errors(source) == [
        f"tasks/b.yaml:1:1: declares 501 tasks, which would take this source to 502 tasks, "
        f"past its bound of 4 (--max-tasks): not applied; the tasks it defined before are kept "
        f"(revision {sha[:12]})",
        f"tasks/c.yaml:1:1: declares 500 tasks, which would take this source to 502 tasks, "
        f"past its bound of 4 (--max-tasks): not applied; none is added (revision {sha[:12]})",
    ]
    # The revert applies at once: nothing was held but the errors.
    remote.write("tasks/b.yaml", git_doc("b", "5 * * * *"))
    os.unlink(remote.work / "tasks" / "c.yaml")
    remote.commit()
    assert synced(source)
    assert schedules(source) == {"default/a": "3 * * * *", "default/b": "5 * * * *"}
    assert errors(source) == []


def _ahead_probe(folder: str) -> None:
    """In a fresh interpreter (reading ahead forks only from one without threads)."""
    from reconciler.sources.ahead import read_ahead

    source = DirectorySource([Path(folder)], max_tasks=10)
    held = read_ahead(source, 2)
    source.refresh()
    plain = DirectorySource([Path(folder)], max_tasks=10)
    plain.refresh()
    same = source.files == plain.files and errors(source) == errors(plain)
    print(held, len(source.definitions()), len(source.errors()), same)


def test_reading_ahead_holds_no_more_than_the_bound(tmp_path: Path) -> None:
    """What is read ahead waits in memory for the first pass: past the bound, the files are
    left to the pass, which refuses them one at a time."""
    for i in range(PARALLEL_MIN_FILES + 44):
        write(tmp_path / f"{i:04d}.yaml", docs(f"t{i}"))
    code = (
        f"from tests.sources.test_task_bound import _ahead_probe; _ahead_probe({str(tmp_path)!r})"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    held, tasks, refused, same = done.stdout.split()
    assert (int(held), tasks, refused, same) == (11, "10", "290", "True")


def _crontask(*args: str) -> subprocess.CompletedProcess[str]:
    return crontask_cli(*args, cwd=ROOT)


@pytest.mark.slow
def test_validate_says_a_folder_declares_more_than_a_source_holds(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", docs("a1", "a2"))
    write(tmp_path / "b.yaml", docs("b1", "b2"))
    past = _crontask("validate", "--max-tasks", "3", str(tmp_path))
    assert past.returncode == 1, past
    assert past.stdout == (
        f"{tmp_path}: 4 tasks declared, past the bound of 3 a source holds (--max-tasks): "
        "crontask run reads the files in path order and refuses each one that would take it "
        "past the bound\n"
    )
    assert "1 problem (2 files, 4 tasks)" in past.stderr
    within = _crontask("validate", "--max-tasks", "4", str(tmp_path))
    assert (within.returncode, within.stdout) == (0, "ok: 2 files, 4 tasks\n")


@pytest.mark.parametrize("value", ["0", "-1", "10000001", "many"])
def test_max_tasks_out_of_range_is_a_usage_error(tmp_path: Path, value: str) -> None:
    done = _crontask("validate", f"--max-tasks={value}", str(tmp_path))
    assert done.returncode == 2
    assert "--max-tasks" in done.stderr


def test_validate_counts_every_definition_as_run_does(tmp_path: Path) -> None:
    """A key repeated takes run past the bound as distinct keys do: validate says so too."""
    write(tmp_path / "a.yaml", docs(*["same"] * 4))
    past = _crontask("validate", "--max-tasks", "3", str(tmp_path))
    assert past.returncode == 1, past
    assert "4 tasks declared, past the bound of 3 a source holds (--max-tasks)" in past.stdout


def test_plan_shows_what_run_would_hold(tmp_path: Path) -> None:
    """``crontask plan`` applies the bound as ``crontask run`` does: the refused file's tasks
    are neither added nor, for what it defined before, removed."""
    old, new = tmp_path / "old", tmp_path / "new"
    write(old / "a.yaml", docs("a1"))
    write(new / "a.yaml", docs("a1", "a2", "a3"))
    write(new / "b.yaml", docs("b1"))
    done = _crontask("plan", "--max-tasks", "2", str(new), "--against", str(old))
    assert "+ default/b1" in done.stdout, done
    assert "default/a2" not in done.stdout
    assert "- default/a1" not in done.stdout
    assert "past its bound of 2 (--max-tasks)" in done.stdout + done.stderr
