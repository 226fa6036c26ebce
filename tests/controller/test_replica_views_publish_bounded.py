"""A renewal publishes this replica's view first (``Cluster.tick``): a store that took the
publish and never answered held the renewal, so the replica neither said that its renewals
failed nor fenced itself in the log, for as long as the store was silent. Now the publish is
waited for ``PUBLISH_WAIT`` at most: given up, the digest stays the one last published, the
publish goes on in its thread, and no other publish starts until it has ended (a later one
landing first would be overwritten by it)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping

import pytest

from reconciler.controller import replica_views
from reconciler.controller.replica_views import ReplicaViews
from reconciler.core.desired import DesiredState
from reconciler.membership.memory import MemoryViews
from tests.helpers import definition, wait_for

WAIT = 0.3  # PUBLISH_WAIT here (2 s in use)


class Hanging(MemoryViews):
    """Views whose ``publish`` is taken and not answered until ``answer`` is set, once armed."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.answer = threading.Event()
        self.calls: list[Mapping[str, str | None]] = []

    def publish(self, member: str, changes: Mapping[str, str | None]) -> None:
        self.calls.append(dict(changes))
        if self.armed:
            self.answer.wait(30)
        super().publish(member, changes)


@pytest.fixture
def hanging(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hanging]:
    monkeypatch.setattr(replica_views, "PUBLISH_WAIT", WAIT, raising=False)
    views = Hanging()
    yield views
    views.answer.set()  # the call left in its thread ends


def test_a_publish_the_store_does_not_answer_is_given_up_and_sent_again_once_over(
    hanging: Hanging, caplog: pytest.LogCaptureFixture
) -> None:
    views = ReplicaViews(hanging, "me")
    views.publish(_desired("a"))
    before = views.digest
    hanging.armed = True
    with caplog.at_level(logging.WARNING, logger="crontask.cluster"):
        views.publish(_desired("a", "b"))  # returns: before the fix it waited for the store
        assert views.digest == before  # what the others can read is announced
        views.publish(_desired("a", "b", "c"))  # the first still in flight: nothing sent
    assert len(hanging.calls) == 2
    said = [r for r in caplog.records if "view not published" in r.getMessage()]
    assert len(said) == 1
    hanging.answer.set()
    latest = _desired("a", "b", "c")

    def sent() -> bool:  # the next renewals' publishes, once the one given up on has ended
        views.publish(latest)
        return "default/c" in hanging.views.get("me", {})

    wait_for("the view to be published again", sent, 10)
    assert set(hanging.views["me"]) == {"default/a", "default/b", "default/c"}
    assert views.digest not in (None, before)


def _desired(*names: str) -> DesiredState:
    return DesiredState({f"default/{name}": definition(name) for name in names})
