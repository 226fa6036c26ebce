"""A pass that compared no key costs the status reporter nothing: every status write crontask
makes comes back as a watch event, and each event is a pass (whose ``keys`` are empty: a
status never changes a definition). The reporter read every CronTask in the cache after each
one (``KubernetesSource.objects``, 0.2 s at 10 000 CronTasks), so while the statuses of 10 000
CronTasks were written (20 a second: 8 minutes) the loop was held pass after pass, /healthz
answered in 0.2-0.9 s instead of 2 ms, and every run's end (a status write, then a pass) cost
a read of all of them. Counted in reads, not in seconds."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client

from reconciler.controller.kube import connect_to
from reconciler.controller.manager import Manager
from reconciler.controller.reconcile import PassResult
from reconciler.core.desired import DesiredState
from reconciler.core.plan import Plan
from reconciler.core.status import ObjectRef
from reconciler.sources.kubernetes import KubernetesOptions, KubernetesSource
from tests.helpers import wait_for

pytestmark = pytest.mark.usefixtures("real_crd")

PASSES = 50


def test_a_pass_of_no_key_reads_no_object_and_a_pass_of_keys_does(
    kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    real = KubernetesSource.objects

    def objects(self: KubernetesSource) -> dict[str, ObjectRef]:
        reads.append(1)
        return real(self)

    monkeypatch.setattr(KubernetesSource, "objects", objects)
    observers: list[Any] = []
    dispatcher: Any = SimpleNamespace(
        paused=None,
        subscribe=lambda listener: None,
        subscribe_progress=lambda listener: None,
        active=lambda key: [],
    )
    reconciler: Any = SimpleNamespace(
        desired=DesiredState({}), mine=lambda key: True, subscribe=observers.append
    )
    scheduler: Any = SimpleNamespace(owned=dict, next_fire_time=lambda key: None)

    def passed(keys: frozenset[str] | None) -> PassResult:
        return PassResult({}, Plan(), DesiredState({}), 0.0, keys=keys)

    async def main() -> None:
        kube = await connect_to(KubernetesOptions(kubeconfig=kubeconfig), "me")
        manager = Manager()
        await kube.start(manager, reconciler, scheduler, dispatcher)
        try:
            (after_pass,) = observers
            after_pass(passed(None))
            assert len(reads) == 1
            for _ in range(PASSES):
                after_pass(passed(frozenset()))
            assert len(reads) == 1
            after_pass(passed(frozenset({"default/a"})))
            assert len(reads) == 2
        finally:
            await manager.shutdown()

    asyncio.run(main())


OBJECTS = 30


def test_objects_makes_a_ref_only_of_an_object_the_cache_replaced(
    k8s_api_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass that compared a key (an edit) reads every object for the reporter: each is made
    into a ref again only when the cache holds another object for it (an event replaced it),
    not at every pass (0.2 s on the loop at 10 000 CronTasks)."""
    from reconciler.sources import kubernetes
    from tests.k8s.test_source_kubernetes import create, patch_spec

    api = client.CustomObjectsApi(k8s_api_client)
    made: list[str] = []
    real = kubernetes._ref

    def ref(obj: dict[str, Any]) -> ObjectRef:
        made.append(obj["metadata"]["name"])
        return real(obj)

    monkeypatch.setattr(kubernetes, "_ref", ref)
    for i in range(OBJECTS):
        create(api, f"t{i}")
    source = KubernetesSource(k8s_api_client, "default", on_change=lambda keys: None)
    try:
        assert source.start(5.0)
        source.refresh(None)
        first = source.objects()
        assert len(first) == OBJECTS
        made.clear()
        assert source.objects() == first
        assert made == []
        patch_spec(api, "t3", {"schedule": "1 * * * *"})
        wait_for(
            "the edit in the cache",
            lambda: (
                source.informer.snapshot(["default/t3"])["default/t3"]["spec"]["schedule"]
                == "1 * * * *"
            ),
        )
        again = source.objects()
        assert made == ["t3"]
        assert again["default/t3"].resource_version != first["default/t3"].resource_version
        assert {k: v for k, v in again.items() if k != "default/t3"} == {
            k: v for k, v in first.items() if k != "default/t3"
        }
    finally:
        source.stop()
