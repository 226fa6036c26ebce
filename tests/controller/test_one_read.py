"""``OneRead``: the task list's read of the shared store (``Service._elsewhere``), one at a time
in a thread of its own and waited for within a bound; a store that failed or hangs is not asked
again for a while, and never by a second thread while the first is stuck (the real list:
``tests/api/test_task_list_replicas.py``)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from reconciler.controller.store_calls import OneRead
from reconciler.store import StoreUnavailable
from tests.helpers import wait_for

PATIENCE = 20.0  # how long a test waits for what must happen long before


class Store:
    """A read that answers ``"runs"`` once ``release`` is set; counts how often it is asked,
    sets ``began`` as it begins and ``ended`` as it ends."""

    def __init__(self) -> None:
        self.asked = 0
        self.began = threading.Event()
        self.release = threading.Event()
        self.ended = threading.Event()

    def read(self) -> str:
        self.asked += 1
        self.began.set()
        try:
            assert self.release.wait(PATIENCE * 3)
            return "runs"
        finally:
            self.ended.set()


def test_a_read_that_hangs_is_not_waited_for_nor_asked_again_while_it_hangs() -> None:
    store = Store()
    reads = OneRead(wait=0.05, quiet=0.0)  # no quiet: only the read still going holds calls
    try:
        assert reads(store.read) is None
        assert reads.down() is False  # the quiet is over at once...
        assert reads(store.read) is None  # ...but the read still hangs: no second one
        assert store.asked == 1
    finally:
        store.release.set()
    assert store.ended.wait(PATIENCE)
    assert wait_for("the store read again", lambda: reads(store.read)) == "runs"
    assert store.asked == 2


def test_a_store_that_fails_is_not_asked_again_before_its_quiet_ends() -> None:
    asked: list[int] = []

    def down() -> str:
        asked.append(1)
        raise StoreUnavailable("the store does not answer")

    reads = OneRead(wait=PATIENCE, quiet=3600.0)
    assert reads(down) is None
    assert reads.down()
    assert reads(down) is None
    assert len(asked) == 1
    again = OneRead(wait=PATIENCE, quiet=0.0)
    assert again(down) is None
    assert again(down) is None
    assert len(asked) == 3  # no quiet: asked at each call


def test_a_read_that_answers_late_ends_the_quiet() -> None:
    store = Store()
    reads = OneRead(wait=0.05, quiet=3600.0)
    try:
        assert reads(store.read) is None
        assert reads.down()
    finally:
        store.release.set()
    wait_for("the late answer to end the quiet", lambda: not reads.down())
    assert reads(store.read) == "runs"
    assert store.asked == 2


def test_other_errors_are_the_callers() -> None:
    def broken() -> str:
        raise ValueError("a bug, not a store that is down")

    reads = OneRead(wait=PATIENCE, quiet=3600.0)
    with pytest.raises(ValueError, match="a bug"):
        reads(broken)
    assert not reads.down()


def test_a_call_that_finds_a_read_going_in_time_waits_its_turn() -> None:
    """Two lists at once from a store that answers: both show what it has."""
    store = Store()
    reads = OneRead(wait=PATIENCE, quiet=3600.0)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(reads, store.read)
        try:
            assert store.began.wait(PATIENCE)
            second = pool.submit(reads, store.read)
        finally:
            store.release.set()
        assert first.result(PATIENCE) == "runs"
        assert second.result(PATIENCE) == "runs"
    assert store.asked == 2
    assert not reads.down()


def test_a_thread_that_cannot_start_leaves_the_next_read_free(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A host out of threads (RuntimeError: can't start new thread) fails one call, which
    answers None; the turn and the mark of a read going are given back, so the next call
    reads (they stayed taken: the list never read the store again until a restart)."""
    reads = OneRead(wait=PATIENCE, quiet=0.0)
    real_start = threading.Thread.start

    def refused(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refused)
    assert reads(lambda: "read") is None
    monkeypatch.setattr(threading.Thread, "start", real_start)
    assert reads(lambda: "read") == "read"
