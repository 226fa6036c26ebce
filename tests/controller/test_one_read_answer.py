"""``OneRead.answer``: a read whose None is an answer (a task never run, a run not found), for
one task's answer and the status page (the real store, locked: ``tests/api/
test_task_store_locked.py``), and ``reads_of``, the one ``OneRead`` of a store that they and
the task list share."""

from __future__ import annotations

import threading

import pytest

from reconciler.controller.store_calls import READS_AT_ONCE, OneRead, reads_of
from reconciler.store import MemoryRunStore, StoreUnavailable
from tests.helpers import wait_for

PATIENCE = 20.0  # how long a test waits for what must happen long before


def test_none_is_an_answer_and_an_absent_store_is_store_unavailable() -> None:
    release = threading.Event()
    ended = threading.Event()

    def held() -> str:
        try:
            assert release.wait(PATIENCE * 3)
            return "runs"
        finally:
            ended.set()

    reads = OneRead(wait=0.05, quiet=3600.0)
    assert reads.answer(lambda: None) is None
    try:
        with pytest.raises(StoreUnavailable, match="did not answer"):
            reads.answer(held)
        assert reads.down()
        with pytest.raises(StoreUnavailable, match="not asked"):
            reads.answer(lambda: "asked")  # the quiet: at once, not read
    finally:
        release.set()
    assert ended.wait(PATIENCE)
    assert wait_for("the late answer to end the quiet", lambda: reads.answer(lambda: "again"))


def test_a_store_that_fails_at_once_is_asked_again_by_the_next_answer() -> None:
    """Its own StoreUnavailable, and no quiet: the page sees the store back at its next read
    (the list's call, which has what ended here to show instead, makes a quiet)."""
    asked: list[int] = []

    def down() -> str:
        asked.append(1)
        raise StoreUnavailable("connection refused")

    reads = OneRead(wait=PATIENCE, quiet=3600.0)
    with pytest.raises(StoreUnavailable, match="connection refused"):
        reads.answer(down)
    assert not reads.down()
    assert reads.answer(lambda: "back") == "back"
    assert reads(down) is None
    assert reads.down()
    assert len(asked) == 2


def test_other_errors_are_the_callers() -> None:
    def broken() -> str:
        raise ValueError("not a cursor this page issued")

    reads = OneRead(wait=PATIENCE, quiet=3600.0)
    with pytest.raises(ValueError, match="cursor"):
        reads.answer(broken)
    assert not reads.down()


def test_one_read_a_store() -> None:
    store, other = MemoryRunStore(), MemoryRunStore()
    assert reads_of(store) is reads_of(store)
    assert reads_of(store) is not reads_of(other)


def test_a_slow_read_does_not_hold_the_others_until_every_turn_is_taken() -> None:
    """``at_once`` reads go at once: one slow read (a long history) leaves the others their
    turns; with every turn held the store is not asked. (One past the wait makes the quiet:
    here none, so that only the reads going hold the calls.)"""
    release = threading.Event()
    began: list[threading.Event] = [threading.Event(), threading.Event()]

    def slow(i: int) -> str:
        began[i].set()
        assert release.wait(PATIENCE * 3)
        return "late"

    reads = OneRead(wait=0.05, quiet=0.0, at_once=2)  # no quiet: only the reads going hold
    asked: list[str] = []

    def quick() -> str:
        asked.append("quick")
        return "runs"

    try:
        with pytest.raises(StoreUnavailable, match="did not answer"):
            reads.answer(lambda: slow(0))
        assert reads.answer(quick) == "runs"  # a turn is free: asked, answered
        with pytest.raises(StoreUnavailable, match="did not answer"):
            reads.answer(lambda: slow(1))
        with pytest.raises(StoreUnavailable):
            reads.answer(quick)  # both turns held past the wait: not asked
        assert asked == ["quick"]
    finally:
        release.set()
    assert all(event.wait(PATIENCE) for event in began)
    assert wait_for("the store asked again", lambda: reads(quick)) == "runs"


def test_the_shared_reads_of_a_store_go_several_at_once() -> None:
    assert reads_of(MemoryRunStore())._at_once == READS_AT_ONCE > 1


def test_a_read_past_the_wait_gives_its_answer_to_late() -> None:
    """So that a read that always takes longer than the wait (a slow store, a large page) is
    not made again and again for nothing: the task list keeps what it read."""
    release = threading.Event()
    given: list[str] = []
    delivered = threading.Event()

    def slow() -> str:
        assert release.wait(PATIENCE * 3)
        return "runs"

    def late(answer: str) -> None:
        given.append(answer)
        delivered.set()

    reads = OneRead(wait=0.05, quiet=3600.0)
    with pytest.raises(StoreUnavailable, match="did not answer"):
        reads.answer(slow, late)
    assert given == []
    release.set()
    assert delivered.wait(PATIENCE)
    assert given == ["runs"]
    assert reads.answer(lambda: "again") == "again"  # the late answer ended the quiet
