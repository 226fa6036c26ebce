"""A CronTask deleted and created again under the same name between two refreshes (the watch
was away, or both events came within one pass) is another object: its invalid spec does not
keep the deleted object's definition running, and the key counts as changed even when the new
object's spec is the old one's (its status and Events start afresh)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.model import API_GROUP
from reconciler.sources.kubernetes import KubernetesSource
from reconciler.sources.kubernetes_watch import Backoff
from tests.helpers import wait_for
from tests.k8s.emulator import Emulator
from tests.k8s.test_source_kubernetes import Marks, crontask

pytestmark = pytest.mark.usefixtures("real_crd")


@pytest.fixture
def api(k8s_api_client: Any) -> Any:
    return client.CustomObjectsApi(k8s_api_client)


@pytest.fixture
def marks() -> Marks:
    return Marks()


@pytest.fixture
def source(k8s_api_client: Any, marks: Marks) -> Iterator[KubernetesSource]:
    src = KubernetesSource(k8s_api_client, "default", on_change=marks)
    src.informer._backoff = Backoff(initial=0.05, cap=0.5)  # fast reconnects in tests
    yield src
    src.stop()


def recreate(api: Any, emulator: Emulator, source: KubernetesSource, **spec: Any) -> str:
    """Delete default/a and create it again with ``spec`` while the source's watch is cut;
    return once the informer's cache holds the new object (the source not refreshed since)."""
    emulator.cut_watches()
    api.delete_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, "a")
    created = api.create_namespaced_custom_object(
        API_GROUP, VERSION, "default", PLURAL, crontask("a", **spec)
    )
    uid = str(created["metadata"]["uid"])

    def cached_uid() -> str | None:
        obj = source.informer.snapshot(["default/a"]).get("default/a")
        return obj["metadata"]["uid"] if obj is not None else None

    wait_for("the new object in the cache", lambda: cached_uid() == uid)
    return uid


def test_a_recreated_object_with_an_invalid_spec_does_not_run_the_deleted_ones(
    api: Any, emulator: Emulator, source: KubernetesSource, marks: Marks
) -> None:
    api.create_namespaced_custom_object(
        API_GROUP, VERSION, "default", PLURAL, crontask("a", schedule="*/2 * * * *")
    )
    assert source.start(5.0)
    assert source.refresh(None) == {"default/a"}
    assert [d.task.spec.schedule for d in source.definitions()] == ["*/2 * * * *"]
    uid = recreate(api, emulator, source, schedule="99 * * * *")
    assert source.refresh(marks.take()) == {"default/a"}
    assert source.definitions() == []  # nothing of the deleted object's is kept in force
    (error,) = source.errors()
    assert str(error).startswith("default/a: spec.schedule:")
    assert source.objects()["default/a"].uid == uid


def test_a_recreated_object_with_the_same_spec_is_a_change(
    api: Any, emulator: Emulator, source: KubernetesSource, marks: Marks
) -> None:
    api.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, crontask("a"))
    assert source.start(5.0)
    source.refresh(None)
    uid = recreate(api, emulator, source)
    # Same spec, same labels, generation 1 again: only the uid differs, and it counts.
    assert source.refresh(marks.take()) == {"default/a"}
    (definition,) = source.definitions()
    assert definition.task.spec.schedule == "*/5 * * * *"
    assert source.objects()["default/a"].uid == uid
    assert source.refresh(None) == set()  # and once read, it is no change again
