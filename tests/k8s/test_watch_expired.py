"""A watch answered 410 right after a list that worked (a watch cache that lags the list, a
broken proxy) re-lists once at once, then only after the backoff, which only a watch that made
progress resets, as client-go's reflector does: never a re-list loop at full speed.

The informer runs on a frozen clock (no watch "ran a while"), and its backoff is a
:class:`Stepped` one: each delay it is asked for waits for the test, which meanwhile changes the
world. The journal of the informer's requests and backoff calls is then exact."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.model import API_GROUP
from reconciler.sources.kubernetes import list_function
from reconciler.sources.kubernetes_watch import Backoff, Informer
from tests.helpers import wait_for
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.history import Expired
from tests.k8s.test_source_kubernetes import crontask

pytestmark = pytest.mark.usefixtures("real_crd")


class Stepped(Backoff):
    """Counts as a Backoff does; each ``next()`` is journaled and returns (a delay of 0) only
    once the test calls :meth:`step`."""

    def __init__(self, journal: list[str]) -> None:
        super().__init__()
        self.journal = journal
        self.permits = threading.Semaphore(0)
        self.closed = False

    def next(self) -> float:
        super().next()
        self.journal.append("backoff")
        while not self.permits.acquire(timeout=0.05) and not self.closed:
            pass
        return 0.0

    def reset(self) -> None:
        super().reset()
        self.journal.append("reset")

    def step(self) -> None:
        self.permits.release()


class World:
    def __init__(self, emulator: Emulator, k8s_api_client: Any) -> None:
        self.emulator = emulator
        self.api = client.CustomObjectsApi(k8s_api_client)
        self.journal: list[str] = []
        self.backoff = Stepped(self.journal)
        requests = list_function(k8s_api_client, "default")

        def journaled(**kwargs: Any) -> Any:
            self.journal.append("watch" if kwargs.get("watch") else "list")
            return requests(**kwargs)

        self.informer = Informer(
            journaled, on_change=lambda keys: None, backoff=self.backoff, clock=lambda: 0.0
        )

    def expire_every_watch(self, expire: bool = True) -> None:
        def expired(rv: int) -> None:
            raise Expired(410, f"too old resource version: {rv}", reason="Expired")

        if expire:
            self.emulator.store.check_watch_rv = expired  # type: ignore[method-assign]
        else:
            del self.emulator.store.check_watch_rv  # the class's own again

    def parked(self, backoffs: int) -> list[str]:
        """The journal once the informer waits in its ``backoffs``-th backoff."""
        wait_for(f"backoff {backoffs}", lambda: self.journal.count("backoff") == backoffs)
        return list(self.journal)


@pytest.fixture
def world(emulator: Emulator, k8s_api_client: Any) -> Iterator[World]:
    w = World(emulator, k8s_api_client)
    yield w
    w.backoff.closed = True
    w.informer.stop()


def test_a_watch_answered_410_after_every_list_backs_off(world: World) -> None:
    world.expire_every_watch()
    world.informer.start()
    # The first 410 re-lists at once; the second, right after that list, waits.
    assert world.parked(1) == ["list", "watch", "list", "watch", "backoff"]
    assert world.informer.expired == 2
    assert "410" in (world.informer.last_error or "")
    world.backoff.step()
    # A list that worked resets nothing: the delays keep growing.
    assert world.parked(2)[5:] == ["list", "watch", "backoff"]
    assert world.backoff.failures == 2


def test_a_watch_that_made_progress_resets_the_backoff(world: World) -> None:
    world.expire_every_watch()
    world.informer.start()
    world.parked(1)
    world.expire_every_watch(False)
    world.backoff.step()
    world.emulator.wait_for_watches(1, "ct")  # listed, and watching
    world.api.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, crontask("a"))
    wait_for("the event", lambda: world.informer.snapshot())
    world.expire_every_watch()
    world.emulator.cut_watches()  # a failed watch, but one that delivered an event
    assert world.parked(2)[5:] == ["list", "watch", "reset", "backoff"]
    assert world.backoff.failures == 1
    world.backoff.step()
    # Its reconnect is answered 410: the first since progress, so re-list at once.
    assert world.parked(3)[9:] == ["watch", "list", "watch", "backoff"]
