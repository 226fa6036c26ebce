"""The directory source against what a folder can do to it: names that are not UTF-8,
permissions lost, rewrites that keep the mtime, folders and links changed under a watch."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.core.desired import assemble
from reconciler.sources.files import DirectorySource
from tests.sources.test_files import doc, keys, write

_DAC = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH: root's pass through modes


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


@contextlib.contextmanager
def modes_apply() -> Iterator[None]:
    """File modes apply to this thread within: as root (the test container), it gives up the
    capabilities that ignore them, and takes them back after (Linux keeps them per thread)."""
    if os.geteuid() != 0:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()  # _LINUX_CAPABILITY_VERSION_3
    if libc.capget(ctypes.byref(header), data) != 0:
        pytest.skip("cannot read this thread's capabilities")
    kept = data[0].effective
    data[0].effective &= ~_DAC
    if libc.capset(ctypes.byref(header), data) != 0:
        pytest.skip("cannot drop this thread's capabilities")
    try:
        yield
    finally:
        data[0].effective = kept
        libc.capset(ctypes.byref(header), data)


def errors(source: DirectorySource) -> list[str]:
    return [str(e) for e in source.errors()]


# -- names ---------------------------------------------------------------------------------


def test_a_file_name_not_utf8_is_an_error_and_the_others_are_read(tmp_path: Path) -> None:
    root = tmp_path / "tasks"
    write(root / "a.yaml", doc("a"))
    write(Path(os.fsdecode(os.fsencode(root) + b"/caf\xe9.yaml")), doc("latin"))
    source = DirectorySource([root])
    assert source.refresh() == {"default/a"}
    assert set(keys(source)) == {"default/a"}
    # Shown with its byte as it is, not Python's stand-in for it (\udce9).
    assert errors(source) == [
        f"{root}/caf\\xe9.yaml:1:1: file name is not UTF-8: not read (rename it)"
    ]


# -- permissions ---------------------------------------------------------------------------


@pytest.mark.parametrize("hinted", [False, True])
def test_a_folder_that_lost_its_search_permission_keeps_its_files_tasks(
    tmp_path: Path, hinted: bool
) -> None:
    # chmod -x (or 644) on a folder: its names can be listed, but not one of its files looked
    # at. That is no deletion; nor is a watch event for a file in it.
    root = tmp_path / "tasks"
    write(root / "a.yaml", doc("a"))
    b = write(root / "team" / "b.yaml", doc("b"))
    source = DirectorySource([root])
    source.refresh()
    (root / "team").chmod(0o644)
    try:
        with modes_apply():
            changed = source.refresh({str(b)} if hinted else None)
            assert set(keys(source)) == {"default/a", "default/b"}
            assert errors(source) == [f"{b}:1:1: cannot read: Permission denied"]
            assert changed == {"default/b"}  # its error is new; its definition is not
            assert source.refresh(None) == set()  # nothing more to say until it changes
    finally:
        (root / "team").chmod(0o755)
    write(b, doc("b", "5 * * * *"))
    assert source.refresh(None) == {"default/b"}
    assert keys(source)["default/b"] == "5 * * * *"
    assert errors(source) == []


def test_a_root_that_lost_its_search_permission_keeps_its_tasks(tmp_path: Path) -> None:
    root = tmp_path / "tasks"
    for name in "abc":
        write(root / f"{name}.yaml", doc(name))
    source = DirectorySource([root], guard_empty=True)
    source.refresh()
    root.chmod(0o644)
    try:
        with modes_apply():
            source.refresh(None)
            assert set(keys(source)) == {"default/a", "default/b", "default/c"}
            assert len(errors(source)) == 3
    finally:
        root.chmod(0o755)


def test_a_root_whose_folder_cannot_be_searched_keeps_its_tasks(tmp_path: Path) -> None:
    root = tmp_path / "mnt" / "tasks"
    write(root / "a.yaml", doc("a"))
    source = DirectorySource([root])
    source.refresh()
    root.parent.chmod(0o644)
    try:
        with modes_apply():
            source.refresh(None)
            assert set(keys(source)) == {"default/a"}
            assert errors(source) == [f"{root}: path cannot be read: Permission denied"]
    finally:
        root.parent.chmod(0o755)


def test_a_file_made_unreadable_keeps_its_tasks_with_an_error(tmp_path: Path) -> None:
    # chmod changes neither the mtime nor the size: the ctime is what says it happened.
    root = tmp_path / "tasks"
    a = write(root / "a.yaml", doc("a"))
    source = DirectorySource([root])
    source.refresh()
    a.chmod(0)
    try:
        with modes_apply():
            assert source.refresh(None) == {"default/a"}
            assert set(keys(source)) == {"default/a"}
            assert errors(source) == [f"{a}:1:1: cannot read: Permission denied"]
    finally:
        a.chmod(0o644)


# -- rewrites that keep the mtime ----------------------------------------------------------


def test_a_same_size_rewrite_that_keeps_the_mtime_is_read(tmp_path: Path) -> None:
    # `cp -p` (or rsync -t, tar) of a reproducible build: every artifact at one mtime.
    build, root = tmp_path / "build", tmp_path / "tasks"
    root.mkdir()
    epoch = 1_700_000_000

    def release(schedule: str) -> None:
        write(build / "t.yaml", doc("t", schedule))
        os.utime(build / "t.yaml", (epoch, epoch))
        shutil.copy2(build / "t.yaml", root / "t.yaml")

    release("0 2 * * *")
    source = DirectorySource([root])
    source.refresh()
    release("0 3 * * *")
    assert source.refresh(None) == {"default/t"}
    assert keys(source) == {"default/t": "0 3 * * *"}


# -- watch events that name more than a file -----------------------------------------------


def test_a_folder_moved_in_and_out_is_read_from_its_event(tmp_path: Path) -> None:
    # `mv staging/team tasks/team`: one event names the folder, none its files.
    root, staging = tmp_path / "tasks", tmp_path / "staging" / "team"
    write(root / "a.yaml", doc("a"))
    write(staging / "b.yaml", doc("b"))
    source = DirectorySource([root])
    source.refresh()
    staging.rename(root / "team")
    assert source.refresh({str(root / "team")}) == {"default/b"}
    assert set(keys(source)) == {"default/a", "default/b"}
    (root / "team").rename(staging)
    assert source.refresh({str(root / "team")}) == {"default/b"}
    assert set(keys(source)) == {"default/a"}


def test_a_configmap_update_is_read_from_the_swap_of_its_data_link(tmp_path: Path) -> None:
    # kubelet's AtomicWriter: a new timestamped folder, ..data_tmp -> it, renamed over ..data.
    mount = tmp_path / "mount"
    write(mount / "..2026_01_01.1" / "tasks.yaml", doc("a", "0 2 * * *"))
    (mount / "..data").symlink_to("..2026_01_01.1")
    (mount / "tasks.yaml").symlink_to("..data/tasks.yaml")
    source = DirectorySource([mount])
    source.refresh()
    write(mount / "..2026_01_02.1" / "tasks.yaml", doc("a", "0 3 * * *"))
    (mount / "..data_tmp").symlink_to("..2026_01_02.1")
    os.replace(mount / "..data_tmp", mount / "..data")
    shutil.rmtree(mount / "..2026_01_01.1")
    # What the watch of the mount reports of it (its hidden folders are not watched).
    hints = {str(mount / name) for name in ("..2026_01_02.1", "..data_tmp", "..data")}
    assert source.refresh(hints) == {"default/a"}
    assert keys(source) == {"default/a": "0 3 * * *"}


def test_a_hint_through_a_linked_folder_reads_the_file_where_it_is(tmp_path: Path) -> None:
    root = tmp_path / "tasks"
    b = write(root / "team" / "b.yaml", doc("b"))
    (root / "alias").symlink_to("team")
    source = DirectorySource([root])
    source.refresh()
    write(b, doc("b", "0 3 * * *"))
    assert source.refresh({str(root / "alias" / "b.yaml")}) == {"default/b"}
    assert keys(source) == {"default/b": "0 3 * * *"}
    assert set(source.files) == {b}


def test_an_editors_scratch_file_is_no_reason_to_read_everything(tmp_path: Path) -> None:
    root = tmp_path / "tasks"
    a = write(root / "a.yaml", doc("a"))
    write(root / "team" / "b.yaml", doc("b"))
    source = DirectorySource([root])
    source.refresh()
    write(root / "team" / "b.yaml", doc("b", "0 3 * * *"))  # no event for it: not read
    write(a, doc("a", "0 3 * * *"))
    hints = {str(a), str(root / "4913"), str(root / ".a.yaml.swp"), str(root / "notes.txt")}
    write(root / "notes.txt", "not a task\n")
    assert source.refresh(hints) == {"default/a"}


# -- conflicts -----------------------------------------------------------------------------


def test_a_key_defined_in_many_places_is_one_bounded_line(tmp_path: Path) -> None:
    root = tmp_path / "tasks"
    write(root / "t.yaml", "---\n".join(doc("x") for _ in range(20)))
    source = DirectorySource([root])
    source.refresh()
    (line,) = assemble(source.definitions(), source.errors()).problems
    shown = ", ".join(f"{root}/t.yaml:{1 + 5 * n}:1" for n in range(1, 6))
    assert line == (
        f"default/x is defined more than once: using {root}/t.yaml:1:1, ignoring {shown} "
        "and 14 more"
    )
