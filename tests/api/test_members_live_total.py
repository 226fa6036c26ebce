"""``total`` in ``GET /api/v1/members`` and the ``crontask_members`` metric count every live
member, not only those a renewal reads (``membership.base.Cap``): both said 3 of 5 live."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi.testclient import TestClient

from reconciler.api.app import create_app
from reconciler.controller.service import Service
from reconciler.sinks.metrics import Metrics
from reconciler.sources.api import ApiSource, ApiTaskFiles
from reconciler.store.base import RunStore
from tests.controller.test_cluster import Replica, settle
from tests.controller.test_cluster_capped import MOST, Junk, capped_world
from tests.sinks.test_metrics import value


def test_the_members_total_and_metric_count_every_live_member(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    world = capped_world(tmp_path / "tasks")
    metrics = Metrics()

    async def main() -> Service:
        a, b = world.replicas("a", "b")
        await settle([a, b])
        a.cluster.on_renewal = metrics.replicas
        Junk(world, 3).renew()
        assert await a.step()
        return service(a, world.store, tmp_path / "api")

    app = create_app(asyncio.run(main()), auth=None, metrics=metrics)
    with TestClient(app) as client:
        body = client.get("/api/v1/members").json()
    assert len(body["items"]) == MOST
    assert body["total"] == 5  # a, b and three records another client wrote
    assert value(metrics, "crontask_members") == 5


def service(replica: Replica, store: RunStore, api: Path) -> Service:
    """The API's view of ``replica``, as ``crontask run --ha`` builds it."""
    return Service(
        loop=asyncio.get_running_loop(),
        store=store,
        scheduler=replica.scheduler,
        dispatcher=replica.dispatcher,
        reconciler=replica.reconciler,
        reconcile=replica.reconciler.run_pass,
        api=ApiSource(ApiTaskFiles(api)),
        cluster=replica.cluster,
    )
