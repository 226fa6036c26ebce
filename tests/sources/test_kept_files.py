"""A broken file keeps the tasks it defined across a restart (``sources.keptfiles``): real
files under a real folder, a real state directory, and a restart simulated by a new source
over the same state directory."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from reconciler.sources.files import DirectorySource
from reconciler.sources.keptfiles import FOLDER
from tests.sources.test_files import doc, keys, write

BROKEN = 'spec: {schedule: "@every 30x"\n'  # a YAML syntax error


def source(
    root: Path, state: Path, *, max_tasks: int = 10_000, max_file_size: int = 1 << 20
) -> DirectorySource:
    record = state / "refused-files.json"
    return DirectorySource(
        [root], refused_record=record, max_tasks=max_tasks, max_file_size=max_file_size
    )


def kept(state: Path) -> list[Path]:
    folder = state / FOLDER
    return sorted(folder.iterdir()) if folder.exists() else []


def errors(source: DirectorySource) -> list[str]:
    return [str(e) for e in source.errors()]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    return path


def broken_then_restarted(tmp_path: Path, state: Path) -> tuple[Path, DirectorySource]:
    """a.yaml (tasks a1, a2) and b.yaml read, a.yaml broken, then a new source started."""
    root = tmp_path / "tasks"
    a = write(root / "a.yaml", doc("a1", "1 * * * *") + "---\n" + doc("a2", "2 * * * *"))
    write(root / "b.yaml", doc("b1"))
    first = source(root, state)
    first.refresh()
    write(a, BROKEN)
    first.refresh([str(a)])
    assert keys(first) == {
        "default/a1": "1 * * * *",
        "default/a2": "2 * * * *",
        "default/b1": "* * * * *",
    }
    restarted = source(root, state)
    restarted.refresh()
    return a, restarted


def test_a_broken_file_keeps_its_tasks_across_a_restart(tmp_path: Path, state: Path) -> None:
    a, restarted = broken_then_restarted(tmp_path, state)
    # As before the restart: the last good definitions, each carrying the file's error.
    assert keys(restarted) == {
        "default/a1": "1 * * * *",
        "default/a2": "2 * * * *",
        "default/b1": "* * * * *",
    }
    [error] = errors(restarted)
    assert error.startswith(f"{a}:")
    held = {d.key: d for d in restarted.definitions()}
    assert held["default/a1"].error == error
    assert held["default/b1"].error is None
    # Where they were defined, and the same definitions (a restart restarts no job).
    assert (str(held["default/a2"].location), held["default/a2"].location.line) == (f"{a}:6:1", 6)
    fresh = DirectorySource([tmp_path / "fresh"])
    write(tmp_path / "fresh" / "x.yaml", doc("a1", "1 * * * *"))
    fresh.refresh()
    assert held["default/a1"].hash == fresh.definitions()[0].hash
    assert held["default/a1"].task == fresh.definitions()[0].task


def test_the_copy_is_private_and_only_the_broken_file_has_one(tmp_path: Path, state: Path) -> None:
    root = tmp_path / "tasks"
    a = write(root / "a.yaml", doc("a1"))
    write(root / "b.yaml", doc("b1"))
    write(root / "never.yaml", BROKEN)  # never good: nothing to keep
    first = source(root, state)
    first.refresh()
    assert kept(state) == []  # nothing is broken with tasks to keep
    write(a, BROKEN)
    first.refresh([str(a)])
    [copy] = kept(state)
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert stat.S_IMODE((state / FOLDER).stat().st_mode) == 0o700
    record = json.loads(copy.read_text())
    assert (record["root"], record["path"]) == (str(root.absolute()), "a.yaml")


def test_a_fix_a_deletion_or_a_root_not_given_deletes_the_copy(tmp_path: Path, state: Path) -> None:
    a, restarted = broken_then_restarted(tmp_path, state)
    assert len(kept(state)) == 1
    write(a, doc("a3"))  # fixed: the new text applies, the copy goes
    restarted.refresh([str(a)])
    assert set(keys(restarted)) == {"default/a3", "default/b1"}
    assert kept(state) == []
    write(a, BROKEN)
    restarted.refresh([str(a)])
    assert len(kept(state)) == 1
    a.unlink()  # deleted while running
    restarted.refresh([str(a)])
    assert kept(state) == []
    assert set(keys(restarted)) == {"default/b1"}
    # Deleted while crontask was not running: the next start deletes its copy.
    write(a, doc("a4"))
    restarted.refresh([str(a)])
    write(a, BROKEN)
    restarted.refresh([str(a)])
    assert len(kept(state)) == 1
    a.unlink()
    source(a.parent, state).refresh()
    assert kept(state) == []
    # A root no longer given: its copies are deleted at start.
    write(a, doc("a5"))
    restarted.refresh([str(a)])
    write(a, BROKEN)
    restarted.refresh([str(a)])
    assert len(kept(state)) == 1
    other = tmp_path / "other"
    other.mkdir()
    source(other, state)
    assert kept(state) == []


def test_without_a_state_directory_a_restart_drops_them_as_before(tmp_path: Path) -> None:
    root = tmp_path / "tasks"
    a = write(root / "a.yaml", doc("a1"))
    first = DirectorySource([root])
    first.refresh()
    write(a, BROKEN)
    first.refresh([str(a)])
    assert set(keys(first)) == {"default/a1"}
    restarted = DirectorySource([root])
    restarted.refresh()
    assert keys(restarted) == {}
    assert list(tmp_path.iterdir()) == [root]


def test_a_copy_for_another_root_or_path_seeds_nothing(tmp_path: Path, state: Path) -> None:
    """A copy is taken back only for the root and path it names, whatever its file name."""
    a, _ = broken_then_restarted(tmp_path, state)
    [copy] = kept(state)
    record = json.loads(copy.read_text())
    copy.write_text(json.dumps({**record, "root": str(tmp_path / "elsewhere")}))
    copy.chmod(0o600)
    restarted = source(a.parent, state)
    restarted.refresh()
    assert set(keys(restarted)) == {"default/b1"}
    copy.write_text(json.dumps({**record, "path": "b.yaml"}))
    restarted = source(a.parent, state)
    restarted.refresh()
    assert set(keys(restarted)) == {"default/b1"}


def test_a_copy_others_may_write_or_a_link_is_not_trusted(tmp_path: Path, state: Path) -> None:
    a, _ = broken_then_restarted(tmp_path, state)
    [copy] = kept(state)
    copy.chmod(0o622)  # as another user's write could have left it
    restarted = source(a.parent, state)
    restarted.refresh()
    assert set(keys(restarted)) == {"default/b1"}
    assert not copy.exists()  # not ours: deleted at start
    # A link in place of a copy is not followed.
    a, _ = broken_then_restarted(tmp_path, state)
    [copy] = kept(state)
    planted = tmp_path / "planted.json"
    planted.write_bytes(copy.read_bytes())
    planted.chmod(0o600)
    copy.unlink()
    copy.symlink_to(planted)
    restarted = source(a.parent, state)
    restarted.refresh()
    assert set(keys(restarted)) == {"default/b1"}


def test_a_folder_others_may_write_is_not_used(
    tmp_path: Path, state: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, _ = broken_then_restarted(tmp_path, state)
    (state / FOLDER).chmod(0o777)
    with caplog.at_level(logging.WARNING, logger="crontask.sources"):
        restarted = source(a.parent, state)
        restarted.refresh()
    assert set(keys(restarted)) == {"default/b1"}
    assert "the folder of broken files' kept definitions is not used" in caplog.text


def test_a_copy_that_does_not_validate_is_ignored_deleted_and_logged(
    tmp_path: Path, state: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, _ = broken_then_restarted(tmp_path, state)
    [copy] = kept(state)
    record = json.loads(copy.read_text())
    record["documents"][0]["task"]["spec"]["schedule"] = "not a schedule"
    copy.write_text(json.dumps(record))
    with caplog.at_level(logging.WARNING, logger="crontask.sources"):
        restarted = source(a.parent, state)
        restarted.refresh()
    assert set(keys(restarted)) == {"default/b1"}
    assert "kept definitions of a broken file are not usable" in caplog.text
    assert kept(state) == []
    # One that validates but no longer hashes as it did is not taken either.
    a, _ = broken_then_restarted(tmp_path, state)
    [copy] = kept(state)
    record = json.loads(copy.read_text())
    record["documents"][0]["hash"] = "0" * 16
    copy.write_text(json.dumps(record))
    restarted = source(a.parent, state)
    restarted.refresh()
    assert set(keys(restarted)) == {"default/b1"}


def test_the_tasks_taken_back_count_toward_max_tasks(tmp_path: Path, state: Path) -> None:
    root = tmp_path / "tasks"
    a = write(root / "a.yaml", doc("a1") + "---\n" + doc("a2"))
    first = source(root, state, max_tasks=3)
    first.refresh()
    write(a, BROKEN)
    first.refresh([str(a)])
    write(root / "0.yaml", doc("z1") + "---\n" + doc("z2"))  # read first at the restart
    restarted = source(root, state, max_tasks=3)
    restarted.refresh()
    assert set(keys(restarted)) == {"default/z1", "default/z2"}
    assert any("--max-tasks" in e for e in errors(restarted))


def test_a_file_too_large_at_the_restart_keeps_its_tasks(tmp_path: Path, state: Path) -> None:
    """Unreadable (past --max-file-size) is broken too: its copy seeds it."""
    root = tmp_path / "tasks"
    a = write(root / "a.yaml", doc("a1"))
    first = source(root, state, max_file_size=4096)
    first.refresh()
    write(a, doc("a1") + "#" * 5000 + "\n")
    first.refresh([str(a)])
    restarted = source(root, state, max_file_size=4096)
    restarted.refresh()
    assert set(keys(restarted)) == {"default/a1"}
    assert "(--max-file-size): not read" in errors(restarted)[0]
    assert os.listdir(state / FOLDER) == [kept(state)[0].name]  # no temporary file left


@pytest.mark.skipif(os.geteuid() != 0, reason="only root gives a file to another user")
def test_a_copy_another_user_owns_is_not_trusted(tmp_path: Path, state: Path) -> None:
    a, _ = broken_then_restarted(tmp_path, state)
    [copy] = kept(state)
    os.chown(copy, 12345, 12345)
    restarted = source(a.parent, state)
    restarted.refresh()
    assert set(keys(restarted)) == {"default/b1"}
    assert kept(state) == []


def test_a_file_changed_while_crontask_was_down_is_not_given_them(
    tmp_path: Path, state: Path
) -> None:
    """Fixed and broken again while crontask was not running: the definitions kept for the
    first broken text would run a definition the user had replaced. The copy goes."""
    root = tmp_path / "tasks"
    a = write(root / "a.yaml", doc("a1", "1 * * * *"))
    first = source(root, state)
    first.refresh()
    write(a, BROKEN)
    first.refresh([str(a)])
    assert kept(state)
    write(a, doc("a1", "5 * * * *"))  # fixed, then broken otherwise, while down
    write(a, BROKEN + "# another text\n")
    restarted = source(root, state)
    restarted.refresh()
    assert keys(restarted) == {}
    assert kept(state) == []


def test_a_single_file_root_deleted_and_written_anew_is_not_given_them(
    tmp_path: Path, state: Path
) -> None:
    """The task retired by deleting its file while crontask was down does not come back when
    a new file, broken, is written at that path one day."""
    a = write(tmp_path / "backup.yaml", doc("backup", "1 * * * *"))
    first = source(a, state)
    first.refresh()
    write(a, BROKEN)
    first.refresh([str(a)])
    a.unlink()
    source(a, state).refresh()  # a start while it is gone
    write(a, BROKEN + "# a new file\n")
    restarted = source(a, state)
    restarted.refresh()
    assert keys(restarted) == {}


def test_accented_definitions_near_the_size_bound_are_kept(tmp_path: Path, state: Path) -> None:
    """Kept as UTF-8: escaped (\\u00e9, 6 bytes for 2) a file near --max-file-size was too
    large to keep."""
    root = tmp_path / "tasks"
    # 80 KB of text: escaped, 240 KB, past the bound of 2 * 80 KB + 64 KiB.
    notes = ", ".join(f"n{i}: {'é' * 10_000}" for i in range(4))
    text = doc("a1", "1 * * * *").replace("metadata: {", f"metadata: {{annotations: {{{notes}}}, ")
    a = write(root / "a.yaml", text)
    size = len(a.read_bytes()) + 100
    first = source(root, state, max_file_size=size)
    first.refresh()
    assert keys(first) == {"default/a1": "1 * * * *"}
    write(a, BROKEN)
    first.refresh([str(a)])
    restarted = source(root, state, max_file_size=size)
    restarted.refresh()
    assert keys(restarted) == {"default/a1": "1 * * * *"}


def test_a_copy_that_cannot_be_written_leaves_no_part_behind(
    tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk mid-write: the partial copy is deleted, not left taking the room."""
    root = tmp_path / "tasks"
    a = write(root / "a.yaml", doc("a1"))
    first = source(root, state)
    first.refresh()
    real_write = os.write

    def full(fd: int, data: bytes | memoryview) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".part"):
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    write(a, BROKEN)
    first.refresh([str(a)])
    monkeypatch.undo()
    assert keys(first) == {"default/a1": "* * * * *"}  # in force all the same
    assert kept(state) == []


def test_the_same_broken_text_written_anew_is_given_them(tmp_path: Path, state: Path) -> None:
    """A new pod's ConfigMap volume, a restored backup, a touch: another inode and ctime, the
    same text. It is the file the definitions were kept for."""
    root = tmp_path / "tasks"
    a = write(root / "a.yaml", doc("a1", "1 * * * *"))
    first = source(root, state)
    first.refresh()
    write(a, BROKEN)
    first.refresh([str(a)])
    again = root / ".a.yaml.new"
    again.write_text(BROKEN)
    os.replace(again, a)  # a new inode
    restarted = source(root, state)
    restarted.refresh()
    assert keys(restarted) == {"default/a1": "1 * * * *"}


def test_a_file_that_cannot_be_read_to_compare_keeps_its_copy_for_a_later_start(
    tmp_path: Path, state: Path
) -> None:
    """A FIFO in its place at a start (or any file that cannot be read then) is not known to
    be the same broken text: not given the definitions, never opened, and the copy stays for
    a start that finds the text again."""
    root = tmp_path / "tasks"
    a = write(root / "a.yaml", doc("a1", "1 * * * *"))
    first = source(root, state)
    first.refresh()
    write(a, BROKEN)
    first.refresh([str(a)])
    a.rename(root / "a.yaml.away")
    os.mkfifo(a)
    restarted = source(root, state)
    restarted.refresh()
    assert keys(restarted) == {}
    assert len(kept(state)) == 1
    a.unlink()
    (root / "a.yaml.away").rename(a)
    again = source(root, state)
    again.refresh()
    assert keys(again) == {"default/a1": "1 * * * *"}
