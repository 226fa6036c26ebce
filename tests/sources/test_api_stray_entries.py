"""An entry of the API's task folder (``<state dir>/api-tasks/NS/NAME.yaml``) that is not a file
crontask wrote (a folder, a FIFO, a socket, a link, a loop of links, a file it may not read) is
the error of its key only: every other task is read, nothing blocks, nothing is read through a
link. A PUT or a DELETE of the key replaces or removes the entry itself, never what a link leads
to; a folder there is a human's to remove (``InTheWay``, saying so). Renames and unlinks are
made durable by syncing the folder."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.core.api_tasks import InTheWay, UnreadableText, version_of
from reconciler.sources import apifiles as api_module
from reconciler.sources.api import ApiSource, ApiTaskFiles
from tests.helpers import task_doc

OPEN = os.open


def text(name: str, namespace: str = "ns") -> str:
    return yaml.safe_dump(task_doc(name, namespace), sort_keys=False)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "api-tasks"


@pytest.fixture
def files(root: Path) -> ApiTaskFiles:
    store = ApiTaskFiles(root)
    store.write("ns/good", text("good"))
    return store


def reason(files: ApiTaskFiles, key: str) -> str:
    found = files.load()[key]
    assert isinstance(found, UnreadableText), found
    assert files.version(key) == found.version == files.versions()[key]
    return found.reason


def assert_only_good_in_force(files: ApiTaskFiles, bad: str) -> str:
    """The source reads the good task and gives ``bad`` as its key's error; returns it."""
    source = ApiSource(files)
    assert source.refresh(None) == {"ns/good", bad}
    assert [d.key for d in source.definitions()] == ["ns/good"]
    (error,) = source.errors()
    assert error.key == bad
    return error.message


def test_a_folder_named_as_a_task_is_the_error_of_its_key(files: ApiTaskFiles, root: Path) -> None:
    (root / "ns" / "odd.yaml").mkdir()
    message = assert_only_good_in_force(files, "ns/odd")
    assert message == (
        f"the stored file {root}/ns/odd.yaml: not a regular file (a folder): not read "
        "(remove the folder: crontask removes none)"
    )
    # A PUT or a DELETE cannot replace it: the answer says what to do, as the error does.
    for change in (lambda: files.write("ns/odd", text("odd")), lambda: files.remove("ns/odd")):
        with pytest.raises(InTheWay, match=r"is a folder .*remove the folder: crontask removes"):
            change()
    assert (root / "ns" / "odd.yaml").is_dir()


@pytest.fixture
def released(root: Path) -> Iterator[list[Path]]:
    """FIFOs a test made: if a reader blocked on one (the bug), a writer's open releases it."""
    fifos: list[Path] = []
    yield fifos
    for fifo in fifos:
        with contextlib.suppress(OSError):  # ENXIO: no reader is waiting on it
            os.close(OPEN(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_a_fifo_is_the_error_of_its_key_and_never_opened(
    files: ApiTaskFiles, root: Path, released: list[Path]
) -> None:
    fifo = root / "ns" / "pipe.yaml"
    os.mkfifo(fifo)
    released.append(fifo)
    read: list[object] = []
    reader = threading.Thread(target=lambda: read.append(files.load()), daemon=True)
    reader.start()
    reader.join(30)  # open() of a FIFO blocks until a writer comes: for ever
    assert not reader.is_alive(), "reading the store blocked on the FIFO"
    assert reason(files, "ns/pipe") == (
        f"the stored file {fifo}: not a regular file (a FIFO): not read "
        "(PUT or DELETE the task to replace it)"
    )
    assert_only_good_in_force(files, "ns/pipe")
    files.write("ns/pipe", text("pipe"))  # the FIFO itself is replaced
    assert files.load()["ns/pipe"] == text("pipe")


def test_a_socket_is_the_error_of_its_key(files: ApiTaskFiles, root: Path) -> None:
    path = root / "ns" / "s.yaml"
    if len(str(path)) > 100:  # AF_UNIX paths are short
        pytest.skip("temporary path too long for a unix socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))
        assert "not a regular file (a socket): not read" in assert_only_good_in_force(files, "ns/s")
        files.remove("ns/s")
    assert not path.exists()


def test_a_link_loop_is_the_error_of_its_key(files: ApiTaskFiles, root: Path) -> None:
    os.symlink("loop.yaml", root / "ns" / "loop.yaml")
    message = assert_only_good_in_force(files, "ns/loop")
    assert message == (
        f"the stored file {root}/ns/loop.yaml: not a regular file (a symbolic link): not read "
        "(PUT or DELETE the task to replace it)"
    )
    files.remove("ns/loop")
    assert not os.path.lexists(root / "ns" / "loop.yaml")


def test_a_link_is_never_read_through_and_a_change_replaces_the_link_itself(
    files: ApiTaskFiles, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(text("linked"))
    link = root / "ns" / "linked.yaml"
    link.symlink_to(outside)
    assert "(a symbolic link): not read" in assert_only_good_in_force(files, "ns/linked")
    files.write("ns/linked", text("linked"), expect=files.version("ns/linked"))
    assert not link.is_symlink()
    assert files.load()["ns/linked"] == text("linked")
    link.unlink()
    link.symlink_to(outside)
    files.remove("ns/linked")
    assert not os.path.lexists(link)
    assert outside.read_text() == text("linked")  # never written or removed through the link


def test_a_file_that_cannot_be_opened_is_the_error_of_its_key(
    files: ApiTaskFiles, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As root, chmod 0 does not stop a read: refuse the open as the kernel would.
    private = root / "ns" / "private.yaml"
    private.write_text(text("private"))

    def refuse(path: os.PathLike[str] | str, flags: int, *args: int, **kw: int) -> int:
        if Path(path) == private:
            raise PermissionError(13, "Permission denied", str(path))
        return OPEN(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", refuse)
    message = assert_only_good_in_force(files, "ns/private")
    assert message == (
        f"the stored file {private}: cannot read: Permission denied "
        "(PUT or DELETE the task to replace it)"
    )


def test_a_file_named_as_no_task_is_the_error_of_its_name(files: ApiTaskFiles, root: Path) -> None:
    (root / "ns" / "Not_A_Name.yaml").write_text("x: 1\n")
    message = assert_only_good_in_force(files, "ns/Not_A_Name")
    assert message.endswith(f"({root}/ns/Not_A_Name.yaml): not read (rename or remove the file)")


def test_a_namespace_folder_that_links_out_is_never_read_written_or_removed(
    files: ApiTaskFiles, root: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "job.yaml").write_text(text("job", "lnk"))
    (root / "lnk").symlink_to(elsewhere)
    message = assert_only_good_in_force(files, "lnk/job")
    assert message == (
        f"the file of lnk/job would leave {root}: its namespace folder {root}/lnk is a symbolic "
        "link (crontask makes none): not read (remove the link, which holds every task of "
        "namespace lnk)"
    )
    for change in (lambda: files.write("lnk/job", "x"), lambda: files.remove("lnk/job")):
        with pytest.raises(InTheWay, match="remove the link, which holds every task"):
            change()
    assert (elsewhere / "job.yaml").read_text() == text("job", "lnk")


def test_a_namespace_entry_that_is_a_file_is_no_task_and_in_the_way_of_one(
    files: ApiTaskFiles, root: Path
) -> None:
    (root / "flat").write_text("not a folder")
    assert files.load() == {"ns/good": text("good")}
    assert files.version("flat/x") is None
    with pytest.raises(KeyError):
        files.remove("flat/x")
    with pytest.raises(InTheWay, match=f"its namespace folder {root}/flat is not a folder"):
        files.write("flat/x", text("x", "flat"))


def test_versions_of_unread_entries_are_stable(files: ApiTaskFiles, root: Path) -> None:
    (root / "ns" / "odd.yaml").mkdir()
    first = reason(files, "ns/odd")
    assert files.version("ns/odd") == version_of(first)
    assert reason(files, "ns/odd") == first


def test_a_write_and_a_removal_sync_the_folder_after_the_change(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str]] = []
    real_replace, real_unlink, real_sync = os.replace, Path.unlink, api_module.sync_folder

    def replace(src: str, dst: os.PathLike[str] | str) -> None:
        calls.append(("replace", str(dst)))
        real_replace(src, dst)

    def unlink(path: Path, missing_ok: bool = False) -> None:
        calls.append(("unlink", str(path)))
        real_unlink(path, missing_ok=missing_ok)

    def sync(folder: Path) -> None:
        calls.append(("sync", str(folder)))
        real_sync(folder)  # a real fsync of the folder: it must work here

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(Path, "unlink", unlink)
    monkeypatch.setattr(api_module, "sync_folder", sync)
    files = ApiTaskFiles(root)
    files.write("ns/a", text("a"))
    # The first write made ns/ and api-tasks/: their parents hold their entries.
    assert calls == [
        ("replace", f"{root}/ns/a.yaml"),
        ("sync", f"{root}/ns"),
        ("sync", str(root)),
        ("sync", str(root.parent)),
    ]
    calls.clear()
    files.write("ns/a", text("a"))
    files.remove("ns/a")
    assert calls == [
        ("replace", f"{root}/ns/a.yaml"),
        ("sync", f"{root}/ns"),
        ("unlink", f"{root}/ns/a.yaml"),
        ("sync", f"{root}/ns"),
        ("sync", str(root)),  # the namespace's last task: its folder went with it
    ]
    assert not (root / "ns").exists()


def test_a_namespace_folder_goes_with_its_last_task_only(root: Path) -> None:
    """A client that puts each task in a namespace of its own left a folder per namespace
    ever used (300 create-delete cycles: 301 folders), each listed at every load."""
    files = ApiTaskFiles(root)
    for n in range(20):
        files.write(f"ns-{n}/a", text("a"))
        files.remove(f"ns-{n}/a")
    files.write("kept/a", text("a"))
    files.write("kept/b", text("b"))
    files.remove("kept/a")
    assert sorted(p.name for p in root.iterdir()) == ["kept"]
    assert files.load() == {"kept/b": text("b")}


def test_a_write_into_a_namespace_folder_removed_meanwhile_makes_it_again(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes wait for each other per key only: the removal of a namespace's last other task
    may take its folder away between a write's making it and its temporary file."""
    files = ApiTaskFiles(root)
    real_mkstemp = tempfile.mkstemp
    removed: list[str] = []

    def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        if not removed:  # as the other key's removal does, between the two steps
            removed.append(str(kwargs["dir"]))
            Path(kwargs["dir"]).rmdir()
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    files.write("ns/a", text("a"))
    assert removed == [f"{root}/ns"]
    assert files.load() == {"ns/a": text("a")}


def test_two_removals_in_one_namespace_both_succeed(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Removals wait for each other per key only: the other key's removal may empty the folder
    and take it away before this one syncs it (a DELETE answered 503 with its file gone, its
    task still scheduled, and a 404 to the DELETE sent again)."""
    files = ApiTaskFiles(root)
    files.write("ns/a", text("a"))
    files.write("ns/b", text("b"))
    real_sync = api_module.sync_folder
    interleaved: list[bool] = []

    def sync(folder: Path) -> None:
        if not interleaved and folder == root / "ns":
            interleaved.append(True)
            files.remove("ns/b")  # the other DELETE, whole, between this one's two steps
        real_sync(folder)

    monkeypatch.setattr(api_module, "sync_folder", sync)
    files.remove("ns/a")
    assert interleaved == [True]
    assert not (root / "ns").exists()
    assert files.load() == {}


def test_a_namespace_folder_removed_while_the_root_is_listed_has_no_key(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full load listed the root, then a namespace folder its last task's removal had just
    taken away: the whole load failed (the source's error, the pass's changes skipped)."""
    files = ApiTaskFiles(root)
    files.write("gone/a", text("a"))
    files.write("kept/b", text("b"))
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:
        if str(path).endswith("/gone"):
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert files.load() == {"kept/b": text("b")}
