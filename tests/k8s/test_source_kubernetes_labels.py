"""Labels past the model's count never make a CronTask custom resource invalid.

The API server takes any number of labels on an object (each key and value checked), the model
holds 256. A CronTask with 300 labels (a policy engine's, a GitOps tool's) was an ``InvalidSpec``
though its spec is good; it is read with the first 256, as annotations are. A task file's labels
are still held to 256: a file is the user's own text, where a 257th label is a mistake to show.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.fields import MAX_ITEMS
from reconciler.core.model import API_GROUP
from reconciler.sources.documents import parse_text
from reconciler.sources.kubernetes import KubernetesSource
from tests.k8s.test_source_kubernetes import crontask

pytestmark = pytest.mark.usefixtures("real_crd")

LABELS = {f"policy.example.com/l{n}": "x" for n in range(300)}


@pytest.fixture
def source(k8s_api_client: Any) -> Iterator[KubernetesSource]:
    src = KubernetesSource(k8s_api_client, "default")
    yield src
    src.stop()


def test_labels_past_the_models_count_do_not_make_the_crontask_invalid(
    k8s_api_client: Any, source: KubernetesSource
) -> None:
    api = client.CustomObjectsApi(k8s_api_client)
    obj = crontask("labelled")
    obj["metadata"]["labels"] = LABELS
    api.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, obj)
    assert source.start(5.0)
    source.refresh(None)
    assert not source.errors()
    (definition,) = source.definitions()
    # The first ones, in the server's order (a Kubernetes object's map keeps it).
    assert definition.task.metadata.labels == dict(list(LABELS.items())[:MAX_ITEMS])


def test_a_files_labels_are_still_counted() -> None:
    labels = "".join(f"    l{n}: x\n" for n in range(MAX_ITEMS + 1))
    text = (
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata:\n  name: t\n  labels:\n"
        + labels
        + 'spec: {schedule: "@daily", command: {args: ["true"]}}\n'
    )
    (error,) = parse_text(text, "t.yaml").errors
    assert "metadata.labels" in error.message
