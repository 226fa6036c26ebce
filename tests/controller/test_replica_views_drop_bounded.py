"""Leaving the replicas (``--ha``) withdraws this replica's view from the store: a store that
took the call and never answered held crontask's stop for as long, past the pod's grace. Now
the withdrawal is waited for ``DROP_WAIT`` at most, and given up with one warning."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest

from reconciler.controller import replica_views
from reconciler.controller.replica_views import ReplicaViews
from reconciler.membership.memory import MemoryViews

WAIT = 0.3  # DROP_WAIT here (5 s in use)


class Hanging(MemoryViews):
    """Views whose ``drop`` is taken and not answered until ``answer`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = threading.Event()
        self.dropping = threading.Event()

    def drop(self, member: str) -> None:
        self.dropping.set()
        self.answer.wait(30)
        super().drop(member)


class Refusing(MemoryViews):
    def drop(self, member: str) -> None:
        raise ConnectionError("the store is gone")


@pytest.fixture
def hanging() -> Iterator[Hanging]:
    views = Hanging()
    yield views
    views.answer.set()  # the call left in its thread ends


def test_a_store_that_does_not_answer_does_not_hold_the_leave(
    hanging: Hanging, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(replica_views, "DROP_WAIT", WAIT, raising=False)
    hanging.publish("me", {"ns/x": "h1"})
    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="crontask.cluster"):
        ReplicaViews(hanging, "me").drop()
    took = time.monotonic() - began
    assert hanging.dropping.is_set()  # the store was asked, and did not answer
    assert WAIT * 0.9 <= took < WAIT + 2.0, took
    said = [r for r in caplog.records if "view not withdrawn" in r.getMessage()]
    assert len(said) == 1
    assert "me" in hanging.views  # still there: given up, not done
    hanging.answer.set()  # the store answers late: the call left behind still withdraws it
    deadline = time.monotonic() + 10
    while "me" in hanging.views and time.monotonic() < deadline:
        hanging.dropping.wait(0.02)
    assert "me" not in hanging.views


def test_an_answered_drop_withdraws_the_view_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replica_views, "DROP_WAIT", 30.0)
    views = MemoryViews()
    views.publish("me", {"ns/x": "h1"})
    views.publish("other", {"ns/x": "h1"})
    began = time.monotonic()
    ReplicaViews(views, "me").drop()
    assert time.monotonic() - began < 5.0
    assert set(views.views) == {"other"}


def test_a_store_error_is_raised_to_the_caller() -> None:
    with pytest.raises(ConnectionError, match="the store is gone"):
        ReplicaViews(Refusing(), "me").drop()
