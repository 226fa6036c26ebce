"""``StorePing``: the readiness check's question to the store, asked once at a time and waited
for within a bound, so that a database that never answers makes /readyz say "store: false"
rather than hang (the real /readyz: ``tests/api/test_readyz_store_hangs.py``)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from reconciler.controller.store_calls import StorePing


class HungStore:
    """A ping that does not return until released; counts how often it is asked."""

    def __init__(self) -> None:
        self.asked = 0
        self.release = threading.Event()

    def ping(self) -> None:
        self.asked += 1
        assert self.release.wait(timeout=30)


def test_a_ping_that_never_answers_is_down_and_asked_once() -> None:
    store = HungStore()
    check = StorePing(store.ping, timeout=0.05, reuse=0.0)
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: check.answers(), range(32)))
        assert answers == [False] * 32
        assert store.asked == 1  # the callers shared the ping in flight
    finally:
        store.release.set()


def test_once_it_answers_the_next_caller_asks_again() -> None:
    store = HungStore()
    store.release.set()
    check = StorePing(store.ping, timeout=10.0, reuse=0.0)
    assert check.answers()
    assert check.answers()
    assert store.asked == 2


def test_an_answer_stands_for_the_callers_that_follow() -> None:
    store = HungStore()
    store.release.set()
    check = StorePing(store.ping, timeout=10.0, reuse=3600.0)
    assert all(check.answers() for _ in range(5))
    assert store.asked == 1


def test_a_store_that_fails_is_down() -> None:
    def ping() -> None:
        raise OSError("connection refused")

    assert StorePing(ping, timeout=10.0, reuse=0.0).answers() is False
