"""The directory source under hostile files: each is a definition error of its own path, the
tasks it defined before keep their last good definitions, and the other files are unaffected."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from reconciler.sources.files import DirectorySource
from tests.sources.test_files import doc, keys, write

NOT_UTF8_FF = "not UTF-8: byte 0xff ('\u00ff' in Windows-1252): save it as UTF-8"


def only_error(source: DirectorySource) -> str:
    (error,) = source.errors()
    return str(error)


def test_a_file_turned_into_a_link_out_of_the_folder_keeps_its_last_good_tasks(
    tmp_path: Path,
) -> None:
    root = tmp_path / "tasks"
    a = write(root / "a.yaml", doc("a"))
    write(root / "b.yaml", doc("b"))
    secret = write(tmp_path / "secret.yaml", doc("stolen") + "password: hunter2\n")
    source = DirectorySource([root])
    source.refresh()
    a.unlink()
    os.symlink(secret, a)
    assert source.refresh() == {"default/a"}
    assert keys(source) == {"default/a": "* * * * *", "default/b": "* * * * *"}
    assert only_error(source) == (
        f"{a}:1:1: a symbolic link that leads outside the folder {root}: not read"
    )
    assert "hunter2" not in only_error(source)
    assert "stolen" not in str(source.definitions())


def test_links_inside_the_folder_keep_working_as_a_configmap_mount_swaps(tmp_path: Path) -> None:
    root = tmp_path / "mount"
    write(root / "..2026_01_01.1" / "a.yaml", doc("a", "1 * * * *"))
    os.symlink("..2026_01_01.1", root / "..data")
    os.symlink("..data/a.yaml", root / "a.yaml")
    source = DirectorySource([root])
    assert source.refresh() == {"default/a"}
    # The kubelet writes a new revision folder and swaps ..data in one rename.
    write(root / "..2026_01_02.1" / "a.yaml", doc("a", "2 * * * *"))
    os.symlink("..2026_01_02.1", root / "..data_tmp")
    os.replace(root / "..data_tmp", root / "..data")
    assert source.refresh() == {"default/a"}
    assert keys(source) == {"default/a": "2 * * * *"}
    assert source.errors() == []


def test_a_folder_given_through_a_link_confines_to_the_folder_as_given(tmp_path: Path) -> None:
    # git-sync's link: /git/current -> worktree; `crontask run /git/current/tasks` confines
    # links to tasks/ of the revision in force.
    write(tmp_path / "wt1" / "shared" / "s.yaml", doc("s"))
    write(tmp_path / "wt1" / "tasks" / "a.yaml", doc("a"))
    os.symlink("a.yaml", tmp_path / "wt1" / "tasks" / "same-folder.yml")
    os.symlink("../shared/s.yaml", tmp_path / "wt1" / "tasks" / "up.yaml")
    os.symlink("wt1", tmp_path / "current")
    root = tmp_path / "current" / "tasks"
    source = DirectorySource([root])
    source.refresh()
    assert set(keys(source)) == {"default/a"}
    # same-folder.yml is read (it defines default/a a second time: a conflict, not an error).
    assert {d.location.path for d in source.definitions()} == {
        str(root / "a.yaml"),
        str(root / "same-folder.yml"),
    }
    assert [str(e) for e in source.errors()] == [
        f"{root / 'up.yaml'}:1:1: a symbolic link that leads outside the folder {root}: not read"
    ]


def test_a_file_over_the_size_limit_keeps_its_last_good_tasks(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", doc("a"))
    source = DirectorySource([tmp_path], max_file_size=1024)
    source.refresh()
    write(a, doc("a", "0 * * * *") + "# padding\n" * 200)
    assert source.refresh() == {"default/a"}
    assert keys(source) == {"default/a": "* * * * *"}
    assert only_error(source).startswith(f"{a}:1:1: file is ")
    assert only_error(source).endswith("over the limit of 1 KiB (--max-file-size): not read")
    # Back under the limit, the file applies again.
    write(a, doc("a", "0 * * * *"))
    source.refresh()
    assert keys(source) == {"default/a": "0 * * * *"}
    assert source.errors() == []


def test_a_fifo_is_an_error_and_nothing_blocks(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", doc("a"))
    os.mkfifo(tmp_path / "pipe.yaml")
    source = DirectorySource([tmp_path])
    source.refresh()
    assert set(keys(source)) == {"default/a"}
    assert (
        only_error(source) == f"{tmp_path / 'pipe.yaml'}:1:1: not a regular file (a FIFO): not read"
    )


def test_invalid_utf8_is_an_error_at_its_place(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_bytes(b"apiVersion: crontask.dev/v1alpha1\nkind: Cron\xffTask\n")
    source = DirectorySource([tmp_path])
    source.refresh()
    assert only_error(source) == f"{path}:2:11: {NOT_UTF8_FF}"


def test_a_folder_named_like_a_yaml_file_is_walked_not_read(tmp_path: Path) -> None:
    write(tmp_path / "odd.yaml" / "a.yaml", doc("a"))
    source = DirectorySource([tmp_path])
    source.refresh()
    # A watcher's event names the folder itself: it is no file, and no error.
    source.refresh({str(tmp_path / "odd.yaml")})
    assert set(keys(source)) == {"default/a"}
    assert source.errors() == []


def test_a_control_character_in_a_file_name_is_escaped_in_locations(tmp_path: Path) -> None:
    write(tmp_path / "evil\nlevel=error.yaml", "spec: [")
    source = DirectorySource([tmp_path])
    source.refresh()
    error = only_error(source)
    assert "\n" not in error
    assert error.startswith(f"{tmp_path}/evil\\nlevel=error.yaml:2:1: YAML syntax error")


def test_a_folder_that_cannot_be_listed_keeps_the_tasks_of_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subfolder whose listing fails (its permissions changed, an I/O error on a network
    mount) is an error of that folder; its files' tasks stay until it can be listed again.
    The tests run as root, which permissions do not stop: the calls that a folder without
    permissions refuses (listing it, and looking up anything in it) fail here instead."""
    root = tmp_path / "tasks"
    write(root / "a.yaml", doc("a"))
    write(root / "sub" / "b.yaml", doc("b"))
    write(root / "sub" / "inner" / "c.yaml", doc("c"))
    source = DirectorySource([root])
    source.refresh()
    refused = root / "sub"
    real = {name: getattr(os, name) for name in ("scandir", "stat")}

    def denied(name: str) -> Any:
        def call(path: Any, *args: Any, **kwargs: Any) -> Any:
            target = Path(path)
            if name == "scandir":
                refuse = target == refused
            else:  # looking anything up inside it
                refuse = target != refused and target.is_relative_to(refused)
            if refuse:
                raise PermissionError(13, "Permission denied", str(path))
            return real[name](path, *args, **kwargs)

        return call

    for name in real:
        monkeypatch.setattr(os, name, denied(name))
    write(root / "a.yaml", doc("a", "5 * * * *"))
    assert source.refresh() == {"default/a"}
    assert keys(source) == {
        "default/a": "5 * * * *",
        "default/b": "* * * * *",
        "default/c": "* * * * *",
    }
    assert only_error(source) == (
        f"{refused}: folder cannot be listed: not read; the tasks of its files are kept"
    )
    for name, call in real.items():
        monkeypatch.setattr(os, name, call)
    (root / "sub" / "inner" / "c.yaml").unlink()
    assert source.refresh() == {"default/c"}
    assert set(keys(source)) == {"default/a", "default/b"}
    assert source.errors() == []
