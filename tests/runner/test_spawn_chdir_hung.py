"""A start whose working directory is on a mount that does not answer holds no descriptor of
crontask's while its chdir waits (a real FUSE mount that never answers: root only)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from reconciler.runner import libc_spawn
from tests.helpers import wait_for
from tests.runner.test_process import _HANG

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/fuse"), reason="a FUSE mount needs root"
)


def _stuck_child(thread: threading.Thread) -> int | None:
    """The process ``thread`` is spawning, once it waits on the FUSE mount (its kernel stack
    is in the FUSE request path)."""
    try:
        children = Path(f"/proc/self/task/{thread.native_id}/children").read_text().split()
        if len(children) != 1:
            return None
        child = int(children[0])
        return child if "fuse" in Path(f"/proc/{child}/stack").read_text() else None
    except OSError:  # the thread or the child is gone, or a kernel that does not tell
        return None


def test_a_chdir_that_does_not_return_holds_none_of_crontasks_descriptors(
    tmp_path: Path,
) -> None:
    """Another run's output pipe (here ``other_write``) sees its end when that run's process
    ends, even while a start is stuck entering its working directory."""
    spawn = libc_spawn.load()
    if spawn is None:
        pytest.skip("no posix_spawn with closefrom/chdir in this C library")
    if not Path("/proc/self/task").is_dir() or not Path("/proc/self/stack").exists():
        pytest.skip("no /proc to see the stuck child in")
    hung = tmp_path / "hung"
    hung.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HANG, str(hung)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    output_read, output_write = os.pipe()
    other_read, other_write = os.pipe()  # as crontask's own: close-on-exec
    errors: list[BaseException] = []

    def start() -> None:
        try:
            spawn.spawn(["/bin/true"], {}, str(hung / "work"), output_write)
        except OSError as exc:  # the mount aborted at the end of the test: chdir fails
            errors.append(exc)

    starting = threading.Thread(target=start, daemon=True)
    try:
        if holder.stdout.readline() != "mounted\n":
            pytest.skip("FUSE cannot be mounted here")
        starting.start()
        child = wait_for("the chdir into the mount waits", lambda: _stuck_child(starting), 10)
        assert sorted(int(fd) for fd in os.listdir(f"/proc/{child}/fd")) == [0, 1, 2]
        os.close(other_write)
        other_write = -1
        assert select.select([other_read], [], [], 0)[0], "the stuck start holds the pipe open"
        assert os.read(other_read, 1) == b""  # its end
    finally:
        holder.communicate(timeout=30)  # its end aborts the mount: the chdir fails
        starting.join(30)
        subprocess.run(["umount", "-l", str(hung)], check=False)
        for fd in (output_read, output_write, other_read, other_write):
            if fd >= 0:
                os.close(fd)
    assert not starting.is_alive()
    assert len(errors) == 1
