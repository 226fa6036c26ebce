"""Annotations crontask has no use for never make a CronTask invalid.

The API server allows 256 KiB of annotations in all; the model holds 256 of at most 32 KiB
each. A CronTask with a tool's 40 KiB annotation, or 300 small ones, was an ``InvalidSpec``
for crontask though its spec is good. crontask's own annotations are still kept and checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.fields import MAX_ITEMS
from reconciler.core.model import API_GROUP
from reconciler.core.status import RUN_NOW_ANNOTATION
from reconciler.sources.kubernetes import KubernetesSource
from tests.k8s.test_source_kubernetes import crontask

pytestmark = pytest.mark.usefixtures("real_crd")


@pytest.fixture
def source(k8s_api_client: Any) -> Iterator[KubernetesSource]:
    src = KubernetesSource(k8s_api_client, "default")
    yield src
    src.stop()


def test_annotations_past_the_models_bounds_do_not_make_the_crontask_invalid(
    k8s_api_client: Any, source: KubernetesSource
) -> None:
    api = client.CustomObjectsApi(k8s_api_client)
    obj = crontask("busy")
    notes = {f"tool.example.com/note-{n}": "x" for n in range(300)}
    notes["tool.example.com/big"] = "y" * (40 * 1024)
    notes[RUN_NOW_ANNOTATION] = "2026-12-03T10:00:00Z"
    obj["metadata"]["annotations"] = notes
    api.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, obj)
    assert source.start(5.0)
    source.refresh(None)
    assert not source.errors()
    (definition,) = source.definitions()
    kept = definition.task.metadata.annotations
    assert len(kept) == MAX_ITEMS - 1  # the run-now annotation took a place, and is no task's
    assert RUN_NOW_ANNOTATION not in kept
    assert "tool.example.com/big" not in kept
    assert source.objects()["default/busy"].run_now == "2026-12-03T10:00:00Z"


def test_a_long_run_now_value_does_not_make_the_crontask_invalid(
    k8s_api_client: Any, source: KubernetesSource
) -> None:
    """It is read from the object, and refused there (tests/k8s/test_run_now_long.py)."""
    api = client.CustomObjectsApi(k8s_api_client)
    obj = crontask("long")
    obj["metadata"]["annotations"] = {RUN_NOW_ANNOTATION: "z" * (40 * 1024)}
    api.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, obj)
    assert source.start(5.0)
    source.refresh(None)
    assert not source.errors()
    (definition,) = source.definitions()
    assert RUN_NOW_ANNOTATION not in definition.task.metadata.annotations
    assert source.objects()["default/long"].run_now == "z" * (40 * 1024)


def test_crontasks_own_annotations_are_still_checked(
    k8s_api_client: Any, source: KubernetesSource
) -> None:
    api = client.CustomObjectsApi(k8s_api_client)
    obj = crontask("loud")
    obj["metadata"]["annotations"] = {"crontask.dev/note": "z" * (40 * 1024)}
    api.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, obj)
    assert source.start(5.0)
    source.refresh(None)
    assert not source.definitions()
    (error,) = source.errors()
    assert "annotations" in str(error)
