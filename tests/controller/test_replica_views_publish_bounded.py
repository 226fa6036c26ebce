"""A renewal publishes this replica's view first (``Cluster.tick``): a store that took the
publish and never answered held the renewal, so the replica neither said that its renewals
failed nor fenced itself in the log, for as long as the store was silent. Now the publish is
waited for ``PUBLISH_WAIT`` at most: given up, the digest stays the one last published, the
publish goes on in its thread, and no other publish starts until it has ended (a later one
landing first would be overwritten by it). Once it has ended, what it sent counts as published
if it landed: the next publish works out its changes against it."""

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

WAIT = 0.3  # PUBLISH_WAIT here (2 s in use), once the set-up's first publish is done


class Hanging(MemoryViews):
    """Views whose ``publish`` is taken and not answered until ``answer`` is set, once armed."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.answer = threading.Event()
        self.calls: list[Mapping[str, str | None]] = []
        self.fail = False  # the next publish answered fails (once)
        self.error = OSError("the store went away")

    def publish(self, member: str, changes: Mapping[str, str | None]) -> None:
        self.calls.append(dict(changes))
        if self.armed:
            self.answer.wait(30)
        if self.fail:
            self.fail = False
            raise self.error
        super().publish(member, changes)


@pytest.fixture
def hanging() -> Iterator[Hanging]:
    views = Hanging()
    yield views
    views.answer.set()  # the call left in its thread ends


def _hang(hanging: Hanging, monkeypatch: pytest.MonkeyPatch) -> None:
    """The publishes from now on are taken and not answered, and given up on after ``WAIT``
    (the set-up's, unarmed, get the wait in use: a loaded machine must not give them up)."""
    monkeypatch.setattr(replica_views, "PUBLISH_WAIT", WAIT)
    hanging.armed = True


def test_a_publish_the_store_does_not_answer_is_given_up_and_sent_again_once_over(
    hanging: Hanging, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    views = ReplicaViews(hanging, "me")
    views.publish(_desired("a"))
    before = views.digest
    _hang(hanging, monkeypatch)
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


def test_a_publish_given_up_on_that_lands_late_counts_as_published(
    hanging: Hanging, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, the next publish worked out its changes against the view before the late one:
    # b removed again was no change, and the store kept b while the digest said {a}, for good.
    views = ReplicaViews(hanging, "me")
    views.publish(_desired("a"))
    before = views.digest
    _hang(hanging, monkeypatch)
    views.publish(_desired("a", "b"))  # given up on, in flight
    hanging.armed = False
    hanging.answer.set()  # ...and it lands
    wait_for("the late publish", lambda: "default/b" in hanging.views.get("me", {}), 5)
    reverted = _desired("a")  # task b removed again

    def sent() -> bool:  # the next renewals' publishes, once the late one's thread is over
        views.publish(reverted)
        return len(hanging.calls) == 3

    wait_for("b's removal to be published", sent, 5)
    assert set(hanging.views["me"]) == {"default/a"}
    assert hanging.calls[-1] == {"default/b": None}
    assert views.digest == before


def test_a_publish_given_up_on_that_fails_is_logged_and_the_view_sent_again(
    hanging: Hanging, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    views = ReplicaViews(hanging, "me")
    views.publish(_desired("a"))
    before = views.digest
    _hang(hanging, monkeypatch)
    hanging.fail = True
    views.publish(_desired("a", "b"))  # given up on, in flight
    hanging.armed = False
    latest = _desired("a", "b")
    with caplog.at_level(logging.ERROR, logger="crontask.cluster"):
        hanging.answer.set()  # ...and it fails

        def sent() -> bool:  # the next renewals' publishes, once the late one's thread is over
            views.publish(latest)
            return len(hanging.calls) == 3

        wait_for("b to be published again", sent, 5)
    said = [r for r in caplog.records if "given up on" in r.getMessage()]
    assert [r.exc_info[1] for r in said if r.exc_info] == [hanging.error]
    assert hanging.calls[-1] == {"default/b": hanging.views["me"]["default/b"]}
    assert views.digest not in (None, before)


def _desired(*names: str) -> DesiredState:
    return DesiredState({f"default/{name}": definition(name) for name in names})
