"""Leaving the replicas at the stop (``--ha``): this replica's membership record is deleted so
that the others take its tasks at once. A run store that took the call and never answered (a
proxy in front of PostgreSQL that lost it, on a connection the pool kept from the last
renewal) held the stop for as long as it was silent, past any pod's grace; and a record that
could not be deleted was logged ``left the replicas`` all the same. Now the delete is waited
for ``LEAVE_WAIT`` at most, and a record not deleted is said, with when the others take the
tasks."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

import pytest

from reconciler.controller import leaving
from reconciler.membership.base import Announcement, MembershipUnavailable
from reconciler.membership.memory import MemoryMembership
from tests.controller.test_cluster import World

WAIT = 0.3  # LEAVE_WAIT here


class Hanging(MemoryMembership):
    """A membership whose ``leave`` is taken and not answered until ``answer`` is set."""

    def __init__(self, world: World) -> None:
        super().__init__(world.registry)
        self.answer = threading.Event()
        self.leaving = threading.Event()

    def leave(self, me: Announcement) -> None:
        self.leaving.set()
        self.answer.wait(30)
        super().leave(me)


class Refusing(MemoryMembership):
    def leave(self, me: Announcement) -> None:
        raise MembershipUnavailable("connection refused")


def _stop(world: World, membership: MemoryMembership) -> None:
    """One replica joins with ``membership``, then stops at once (its run's ``finally``)."""
    (replica,) = world.replicas("a")
    replica.cluster.membership = membership

    async def main() -> None:
        stop = asyncio.Event()
        stop.set()
        await asyncio.wait_for(replica.cluster.run(lambda: None, stop), 20)

    asyncio.run(main())


def _said(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


def test_a_store_that_does_not_answer_does_not_hold_the_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(leaving, "LEAVE_WAIT", WAIT)
    world = World(tmp_path)
    hanging = Hanging(world)
    try:
        with caplog.at_level(logging.INFO, logger="crontask.cluster"):
            _stop(world, hanging)
        assert hanging.leaving.is_set()  # asked, and not answered
        assert "a:1:a" in world.registry.records  # still there: given up, not done
        (said,) = _said(caplog, "membership not withdrawn")
        assert said.levelno == logging.WARNING
        assert "until its lease expires" in said.getMessage()
        assert not _said(caplog, "left the replicas")
    finally:
        hanging.answer.set()  # the call left in its thread ends, and still deletes the record
    deadline = time.monotonic() + 10
    while "a:1:a" in world.registry.records and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "a:1:a" not in world.registry.records


def test_a_refused_delete_is_not_said_to_have_left(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world = World(tmp_path)
    with caplog.at_level(logging.INFO, logger="crontask.cluster"):
        _stop(world, Refusing(world.registry))
    (said,) = _said(caplog, "membership not withdrawn")
    assert "connection refused" in str(said.__dict__.get("fields"))
    assert not _said(caplog, "left the replicas")


def test_a_replica_that_leaves_is_gone_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world = World(tmp_path)
    with caplog.at_level(logging.INFO, logger="crontask.cluster"):
        _stop(world, MemoryMembership(world.registry))
    assert "a:1:a" not in world.registry.records
    assert len(_said(caplog, "left the replicas")) == 1
    assert not _said(caplog, "not withdrawn")


def test_no_thread_for_the_delete_is_said_and_the_stop_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A host out of threads (a pids limit that the commands used up) refuses the delete's
    thread: the stop says the record was not deleted and goes on, as a refused delete does;
    the component does not fail on it."""
    real = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        if thread.name == "crontask-leave":
            raise RuntimeError("can't start new thread")
        real(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    world = World(tmp_path)
    with caplog.at_level(logging.INFO, logger="crontask.cluster"):
        _stop(world, MemoryMembership(world.registry))
    (said,) = _said(caplog, "membership not withdrawn")
    assert "can't start new thread" in str(said.__dict__.get("fields"))
    assert not _said(caplog, "left the replicas")
