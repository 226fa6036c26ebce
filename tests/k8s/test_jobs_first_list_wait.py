"""The Jobs watch of several namespaces waits for their first lists together: with the API
server down at start, ``JobWatch.start`` waited its 30 s for each namespace in turn, so a
crontask whose Jobs go elsewhere than the CronTasks it watches started a minute late before
the CronTask source even began its own wait.

The emulator holds every request until it is healed: the first lists of all namespaces must
have been asked for while the first of them is still unanswered, and the start ends once
the outage does. Nothing here depends on how long anything takes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config

from reconciler.sources.kubernetes_jobs import JobWatch
from tests.helpers import wait_for
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import serve

NAMESPACES = ("batch", "default", "ops")


@pytest.fixture
def held() -> Iterator[Emulator]:
    yield from serve()


def listed(emulator: Emulator) -> set[str]:
    """The namespaces whose Jobs were asked for (held or answered)."""
    found = set()
    for request in list(emulator.request_log):
        parts = request.path.strip("/").split("/")
        if parts[-1] == "jobs" and "namespaces" in parts and request.method == "GET":
            found.add(parts[parts.index("namespaces") + 1])
    return found


def test_the_first_lists_of_every_namespace_are_waited_for_at_once(
    held: Emulator, tmp_path: Path
) -> None:
    api: Any = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(held.write_kubeconfig(tmp_path / "kubeconfig"))
    )
    held.outage(status=None, delay=600)  # every request hangs until heal()
    loop = asyncio.new_event_loop()
    watch = JobWatch(api, NAMESPACES)
    result: list[bool] = []
    starting = threading.Thread(target=lambda: result.append(watch.start(loop, 600)))
    try:
        starting.start()
        # One after another, the second namespace was not asked for before the first answered.
        wait_for(
            "a first list of each namespace asked for", lambda: listed(held) >= set(NAMESPACES)
        )
        assert not result  # still waiting: nothing has answered
        held.heal()
        starting.join(30)
        assert result == [True]
        assert all(watch.watched(namespace) for namespace in NAMESPACES)
    finally:
        held.heal()
        starting.join(30)
        watch.stop()
        loop.close()
        api.close()
