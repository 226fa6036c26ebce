"""``gittree.remove_tree`` leaves a folder on another filesystem than the tree's top (a mount
point someone made inside an old state folder) with what is mounted there, deletes the rest,
and ends with an OSError naming it. A real mount needs privileges tests do not have: the mount
is faked by the ``st_dev`` that ``os.fstat`` reports for that folder (the walk reads each
folder's device from its open descriptor)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.sources import gittree


def test_a_folder_on_another_filesystem_is_left_with_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    top = tmp_path / "tree"
    mount = top / "a" / "mnt"
    (mount / "deep").mkdir(parents=True)
    (mount / "keep.txt").write_text("another filesystem's")
    (mount / "deep" / "keep.txt").write_text("another filesystem's")
    (top / "a" / "x.yaml").write_text("x")
    (top / "b").mkdir()
    (top / "b" / "y.yaml").write_text("y")
    (top / "z.yaml").write_text("z")
    mounted = os.stat(mount)
    real_fstat = os.fstat

    def fstat(fd: int) -> os.stat_result:
        st = real_fstat(fd)
        if (st.st_dev, st.st_ino) != (mounted.st_dev, mounted.st_ino):
            return st
        fields = list(st)
        fields[2] = st.st_dev + 1  # st_dev
        return os.stat_result(fields)

    monkeypatch.setattr(os, "fstat", fstat)
    with pytest.raises(OSError, match="mounted") as raised:
        gittree.remove_tree(top)
    assert raised.value.filename == "mnt"
    assert (mount / "keep.txt").read_text() == "another filesystem's"
    assert (mount / "deep" / "keep.txt").exists()
    assert sorted(str(p.relative_to(top)) for p in top.rglob("*")) == [
        "a",
        "a/mnt",
        "a/mnt/deep",
        "a/mnt/deep/keep.txt",
        "a/mnt/keep.txt",
    ]
