"""Reading one file: only regular files, at most the size limit, never through a link that
leaves the root. Real files, FIFOs, sockets and devices; no mocks."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.sources.reading import Unreadable, read_file, resolve_root, within

LIMIT = 1024


def read(path: Path, root: Path, limit: int = LIMIT) -> bytes:
    return read_file(path, limit=limit, root=resolve_root(root), root_label="the folder")[0]


def refused(path: Path, root: Path, limit: int = LIMIT) -> str:
    with pytest.raises(Unreadable) as caught:
        read(path, root, limit)
    return caught.value.message


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "tasks"
    folder.mkdir()
    return folder


def test_a_regular_file_and_its_signature(root: Path) -> None:
    (root / "a.yaml").write_text("a: 1\n")
    data, signature = read_file(
        root / "a.yaml", limit=LIMIT, root=resolve_root(root), root_label="x"
    )
    stat = (root / "a.yaml").stat()
    assert data == b"a: 1\n"
    assert signature == (stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino)


def test_links_that_stay_inside_are_followed(root: Path) -> None:
    # A ConfigMap mount: a.yaml -> ..data/a.yaml, ..data -> ..2026_01_01_00_00_00.1
    revision = root / "..2026_01_01_00_00_00.1"
    revision.mkdir()
    (revision / "a.yaml").write_text("from the configmap\n")
    os.symlink(revision.name, root / "..data")
    os.symlink("..data/a.yaml", root / "a.yaml")
    os.symlink("a.yaml", root / "b.yaml")  # a link between two files of the folder
    assert read(root / "a.yaml", root) == b"from the configmap\n"
    assert read(root / "b.yaml", root) == b"from the configmap\n"


def test_a_root_that_is_a_link_is_followed_and_confines_to_its_target(tmp_path: Path) -> None:
    # git-sync's --link: the root itself is a link to the revision in force.
    (tmp_path / "rev1").mkdir()
    (tmp_path / "rev1" / "a.yaml").write_text("rev1\n")
    (tmp_path / "secret.yaml").write_text("outside\n")
    os.symlink("../secret.yaml", tmp_path / "rev1" / "leak.yaml")
    os.symlink("rev1", tmp_path / "current")
    assert read(tmp_path / "current" / "a.yaml", tmp_path / "current") == b"rev1\n"
    assert "leads outside" in refused(tmp_path / "current" / "leak.yaml", tmp_path / "current")


def test_a_link_leaving_the_root_is_refused_without_reading_the_target(
    root: Path, tmp_path: Path
) -> None:
    shadow = tmp_path / "shadow"
    shadow.write_text("root:$6$hash:19000:0:99999:7:::\n")
    os.symlink(shadow, root / "abs.yaml")
    os.symlink("../shadow", root / "rel.yaml")
    os.symlink("/dev/zero", root / "zero.yaml")
    (root / "sub").mkdir()
    os.symlink("../../shadow", root / "sub" / "deep.yaml")
    big = tmp_path / "big"
    big.write_bytes(b"x" * (LIMIT * 4))
    os.symlink(big, root / "big.yaml")
    for name in ("abs.yaml", "rel.yaml", "zero.yaml", "sub/deep.yaml", "big.yaml"):
        # The same message for all: not even the target's type or size is told.
        assert refused(root / name, root) == (
            "a symbolic link that leads outside the folder: not read"
        )


def test_a_fifo_is_refused_without_blocking(root: Path) -> None:
    fifo = root / "fifo.yaml"
    os.mkfifo(fifo)
    # Opening a FIFO for reading blocks until a writer comes; the reader must never get there.
    assert refused(fifo, root) == "not a regular file (a FIFO): not read"


def test_a_socket_is_refused(root: Path, tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = root / "s.yaml"
    if len(str(path)) > 100:  # AF_UNIX paths are short
        pytest.skip("temporary path too long for a unix socket")
    try:
        sock.bind(str(path))
        assert refused(path, root) == "not a regular file (a socket): not read"
    finally:
        sock.close()


def test_a_device_given_as_the_root_is_refused() -> None:
    assert refused(Path("/dev/zero"), Path("/dev/zero")) == (
        "not a regular file (a character device): not read"
    )


def test_a_file_over_the_limit_is_refused_from_its_size(root: Path) -> None:
    (root / "big.yaml").write_bytes(b"x" * (LIMIT + 1))
    (root / "edge.yaml").write_bytes(b"x" * LIMIT)
    assert refused(root / "big.yaml", root) == (
        "file is 1025 bytes, over the limit of 1 KiB (--max-file-size): not read"
    )
    assert len(read(root / "edge.yaml", root)) == LIMIT


def test_a_file_that_grows_while_read_is_cut_at_the_limit() -> None:
    # /proc files are regular files whose size says 0 and whose content is what they are read
    # at: a file that "grows" between fstat and read, for real.
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("no /proc")
    assert os.stat(status).st_size == 0
    assert refused(status, status, limit=64) == (
        "file grew past the limit of 64 bytes (--max-file-size) while it was read: not read"
    )


def test_a_file_that_grows_while_read_by_a_writer(root: Path) -> None:
    # A real writer appending while the reader reads: whatever the interleaving, the reader
    # returns at most the limit or refuses, and never reads more than limit + 1 bytes.
    path = root / "growing.yaml"
    path.write_bytes(b"")
    stop = threading.Event()

    def write() -> None:
        with path.open("ab") as out:
            while not stop.is_set():
                out.write(b"x" * 4096)
                out.flush()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        outcomes = set()
        for _ in range(20):
            try:
                data = read(path, root, limit=LIMIT)
            except Unreadable as err:
                outcomes.add(err.message.split(" ", 2)[1])  # "is" (from fstat) or "grew"
            else:
                assert len(data) <= LIMIT
                outcomes.add("read")
        assert outcomes <= {"is", "grew", "read"}
    finally:
        stop.set()
        writer.join()


def test_a_missing_file_is_gone_and_a_link_to_nothing_an_error(root: Path) -> None:
    """A link to nothing is no deletion: its file's tasks must stay (a typo in the target)."""
    os.symlink("nowhere.yaml", root / "dangling.yaml")
    os.symlink("/nowhere/at/all.yaml", root / "outside.yaml")
    with pytest.raises(FileNotFoundError):
        read(root / "missing.yaml", root)
    assert refused(root / "dangling.yaml", root) == "a symbolic link to nothing: not read"
    assert refused(root / "outside.yaml", root).startswith("a symbolic link that leads outside")


def test_a_link_loop_is_an_error(root: Path) -> None:
    os.symlink("loop.yaml", root / "loop.yaml")
    assert refused(root / "loop.yaml", root) == "cannot read: Too many levels of symbolic links"


@pytest.fixture
def unreadable(root: Path) -> Iterator[Path]:
    path = root / "private.yaml"
    path.write_text("a: 1\n")
    path.chmod(0)
    yield path
    path.chmod(0o600)


def test_a_file_without_permission_is_an_error(root: Path, unreadable: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads anything")
    assert refused(unreadable, root) == "cannot read: Permission denied"


@pytest.mark.parametrize(
    ("real", "root", "inside"),
    [
        ("/a/b", "/a/b", True),
        ("/a/b/c", "/a/b", True),
        ("/a/bc", "/a/b", False),
        ("/a", "/a/b", False),
        ("/etc/shadow", "/", True),
    ],
)
def test_within(real: str, root: str, inside: bool) -> None:
    assert within(real, root) is inside
