"""``statedir.prepare`` and the SQLite store's folder: every folder above the state directory
must be root's or ours, and not writable by another user unless sticky (as OpenSSH's
StrictModes), or that user could rename the state directory away and put their own in its
place. Tests run as root: "another user" is nobody. The real ``crontask run`` on these, and
on a volume's root, is in ``tests/cli/test_state_dir_ancestors.py``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler import statedir
from reconciler.store import open_store

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")


def folder(path: Path, mode: int) -> Path:
    path.mkdir(parents=True)
    path.chmod(mode)
    return path


def test_a_folder_anyone_may_write_above_the_state_directory_is_refused(tmp_path: Path) -> None:
    ww = folder(tmp_path / "ww", 0o777)
    with pytest.raises(statedir.Refused, match=f"{ww}, on its path, .*0777.* not sticky"):
        statedir.prepare(ww / "state")
    assert not (ww / "state").exists()  # nothing made there
    # One of ours, private, that is there already: refused all the same.
    (ww / "state").mkdir(mode=0o700)
    with pytest.raises(statedir.Refused, match=f"{ww}, on its path"):
        statedir.prepare(ww / "state")


def test_every_folder_up_the_path_counts_and_so_does_a_group_not_ours(tmp_path: Path) -> None:
    a = folder(tmp_path / "a", 0o775)
    os.chown(a, -1, 4242)
    (a / "b" / "c").mkdir(parents=True)
    with pytest.raises(statedir.Refused, match=f"{a}, on its path, .*0775"):
        statedir.prepare(a / "b" / "c" / "state")
    os.chown(a, -1, os.getegid())  # our own group may write it (a pod's fsGroup)
    statedir.prepare(a / "b" / "c" / "state")


@as_root
def test_a_folder_of_another_user_on_the_path_is_refused(tmp_path: Path) -> None:
    theirs = folder(tmp_path / "theirs", 0o755)
    os.chown(theirs, NOBODY, NOBODY)
    with pytest.raises(statedir.Refused, match=f"{theirs}, on its path, is owned by uid 65534"):
        statedir.prepare(theirs / "state")


def test_a_sticky_folder_is_like_tmp(tmp_path: Path) -> None:
    # Only an entry's owner may move it there: the state directory is ours.
    shared = folder(tmp_path / "shared", 0o1777)
    statedir.prepare(shared / "state")
    assert (shared / "state").is_dir()


def test_where_a_link_on_the_path_leads_counts(tmp_path: Path) -> None:
    ww = folder(tmp_path / "ww", 0o777)
    (ww / "inner").mkdir(mode=0o700)
    (tmp_path / "safe").mkdir(mode=0o700)
    (tmp_path / "safe" / "link").symlink_to(ww / "inner")
    with pytest.raises(statedir.Refused, match=f"{ww}, on its path"):
        statedir.prepare(tmp_path / "safe" / "link" / "state")


def test_a_link_on_the_path_in_a_folder_anyone_may_write_is_refused(tmp_path: Path) -> None:
    # Whoever may replace the link chooses where the path leads.
    ww = folder(tmp_path / "ww", 0o777)
    (tmp_path / "ours").mkdir(mode=0o700)
    (ww / "link").symlink_to(tmp_path / "ours")
    with pytest.raises(statedir.Refused, match=f"{ww}, on its path"):
        statedir.prepare(ww / "link" / "state")


def test_the_db_folder_of_a_sqlite_store_is_walked_too(tmp_path: Path) -> None:
    ww = folder(tmp_path / "ww", 0o777)
    (ww / "db").mkdir(mode=0o700)
    with pytest.raises(statedir.Refused, match=f"refusing run store folder .*{ww}, on its path"):
        open_store(f"sqlite:///{ww}/db/runs.db", writer=True)
    assert not (ww / "db" / "runs.db").exists()
