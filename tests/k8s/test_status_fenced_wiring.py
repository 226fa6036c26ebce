"""The wiring of ``crontask run --kubernetes --ha`` gives the status writer the fence (the
dispatcher paused) and the ownership of each task, and tells the reporter when the fence lifts,
after whatever else listened for that (the notifier)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from reconciler.controller.kube import connect_to
from reconciler.controller.manager import Manager
from reconciler.core.desired import DesiredState
from reconciler.sinks.kubernetes_report import StatusReporter
from reconciler.sources.kubernetes import KubernetesOptions

pytestmark = pytest.mark.usefixtures("real_crd")


def test_the_writer_holds_while_fenced_and_the_reporter_hears_the_fence_lift(
    kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    heard: list[tuple[str, list[str]]] = []

    def resumed(self: StatusReporter, keys: Collection[str]) -> None:
        heard.append(("reporter", list(keys)))

    monkeypatch.setattr(StatusReporter, "resumed", resumed)
    dispatcher: Any = SimpleNamespace(
        paused=None,
        subscribe=lambda listener: None,
        subscribe_progress=lambda listener: None,
        active=lambda key: [],
    )
    reconciler: Any = SimpleNamespace(
        desired=DesiredState({}),
        mine=lambda key: key != "default/theirs",
        subscribe=lambda observer: None,
    )
    scheduler: Any = SimpleNamespace(owned=dict, next_fire_time=lambda key: None)
    cluster: Any = SimpleNamespace(on_resumed=lambda keys: heard.append(("notifier", list(keys))))

    async def main() -> None:
        kube = await connect_to(KubernetesOptions(kubeconfig=kubeconfig), "me")
        manager = Manager()
        await kube.start(manager, reconciler, scheduler, dispatcher, cluster)
        try:
            assert not kube.writer.held()
            dispatcher.paused = "membership not renewed for 10s"
            assert kube.writer.held()
            assert kube.writer.owns("default/a")
            assert not kube.writer.owns("default/theirs")
            cluster.on_resumed(["default/a"])
            assert heard == [("notifier", ["default/a"]), ("reporter", ["default/a"])]
        finally:
            await manager.shutdown()

    asyncio.run(main())
