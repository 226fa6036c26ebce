"""The spawner's threads share what the C library spawn found on the PATH (``libc_spawn``): a
thread that trims it while another changes it must neither fail nor lose the process it has
just started."""

from __future__ import annotations

import os
import threading
import time

import pytest

from reconciler.runner import libc_spawn

ENV_PATH = os.environ.get("PATH", os.defpath)


def test_a_start_that_trims_the_programs_found_while_another_thread_changes_them_starts() -> None:
    """Once 1024 programs are remembered, each new one found trims them. The trim used to
    iterate over them while the pool's other threads went on adding and forgetting theirs, and
    then raised "dictionary changed size during iteration" after its process had started: the
    run was recorded as failing to start while its command ran, unwatched, its pid lost."""
    libc = libc_spawn.load()
    if libc is None:
        pytest.skip("no C library spawn here")
    vanished = ("vanished-program", ENV_PATH, None)
    other_failed: list[BaseException] = []

    def other_thread() -> None:
        # Another run's start of a program remembered where it is no longer: it is forgotten
        # (and looked for again, in vain).
        read_fd, write_fd = os.pipe()
        try:
            libc.spawn(["vanished-program"], {"PATH": ENV_PATH}, None, write_fd)
        except FileNotFoundError as error:
            other_failed.append(error)
        finally:
            os.close(read_fd)
            os.close(write_fd)

    class Now(float):
        """The clock's reading. The trim compares each entry with it: at the first of those
        comparisons, another thread's start runs to its end (the trim waits for it, as a
        thread that lost the GIL does)."""

        met = False

        def __lt__(self, other: object) -> bool:
            if not Now.met and threading.current_thread() is threading.main_thread():
                Now.met = True
                thread = threading.Thread(target=other_thread)
                thread.start()
                thread.join()
            return float(self) < float(other)  # type: ignore[arg-type]

    libc._clock = lambda: Now(time.monotonic())
    for n in range(libc_spawn._FOUND_MAX - 1):
        libc._found[(f"task-{n}", ENV_PATH, f"/srv/task-{n}")] = (b"/bin/true", float("inf"))
    libc._found[vanished] = (b"/nonexistent/vanished-program", float("inf"))

    read_fd, write_fd = os.pipe()
    try:
        pid = libc.spawn(["true"], {"PATH": f"/nonexistent:{ENV_PATH}"}, None, write_fd)
    finally:
        os.close(write_fd)
    os.close(read_fd)
    assert os.waitpid(pid, 0)[0] == pid
    assert Now.met  # the other start did change them meanwhile
    assert len(other_failed) == 1
    assert vanished not in libc._found
    assert len(libc._found) <= libc_spawn._FOUND_MAX
