"""``StorePing.seen``: what /metrics shows of the store (``crontask_run_store_up``) is the
readiness check's last answer, read without waiting: a scrape never waits for a store that
does not answer, and a ping that has not answered within its bound is down, as /readyz says."""

from __future__ import annotations

from reconciler.controller.store_calls import StorePing
from tests.controller.test_store_ping import HungStore
from tests.helpers import wait_for


def test_the_first_scrape_asks_without_waiting_and_sees_no_answer_yet() -> None:
    store = HungStore()
    check = StorePing(store.ping, timeout=3600.0, reuse=0.0)
    try:
        # ``answers`` would wait an hour for this ping: ``seen`` says it knows nothing yet.
        assert check.seen() is None
        assert check.seen() is None
        wait_for("the ping asked once", lambda: store.asked == 1)
    finally:
        store.release.set()
    assert wait_for("the ping's answer", check.seen) is True


def test_a_ping_past_its_bound_is_down_without_waiting() -> None:
    store = HungStore()
    check = StorePing(store.ping, timeout=0.0, reuse=0.0)
    try:
        assert check.seen() is False
        assert check.answers() is False  # the same ping, shared
        wait_for("the ping asked", lambda: store.asked == 1)
        assert store.asked == 1
    finally:
        store.release.set()


def test_each_scrape_shows_the_answer_the_one_before_it_asked_for() -> None:
    down = [True]
    asked: list[None] = []

    def ping() -> None:
        asked.append(None)
        if down[0]:
            raise OSError("unable to open database file")

    check = StorePing(ping, timeout=3600.0, reuse=0.0)
    assert wait_for("the store's first answer", lambda: check.seen() is not None) is not None
    assert check.seen() is False
    down[0] = False
    # A scrape asks again and shows the last answer: the next shows the store back.
    wait_for("the store back", lambda: check.seen() is True)
    count = len(asked)
    assert check.seen() is True
    assert len(asked) >= count  # asked again for the next scrape, never waited for
