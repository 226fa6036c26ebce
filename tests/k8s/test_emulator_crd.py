"""CRD registration: apiextensions.k8s.io/v1 CRUD, Established at once, resources then served."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import CRD_PATH, Kubectl, load_crd
from tests.k8s.support import GROUP, PLURAL, VERSION, crontask


def _cluster_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "clusterthings.example.dev"},
        "spec": {
            "group": "example.dev",
            "scope": "Cluster",
            "names": {"plural": "clusterthings", "kind": "ClusterThing"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                }
            ],
        },
    }


def test_create_get_list_delete(emulator: Emulator, k8s_api_client: Any) -> None:
    ext: Any = client.ApiextensionsV1Api(k8s_api_client)
    created = ext.create_custom_resource_definition(load_crd())
    assert created.metadata.name == "crontasks.crontask.dev"
    assert created.metadata.generation == 1
    conditions = {c.type: c.status for c in created.status.conditions}
    assert conditions == {"Established": "True", "NamesAccepted": "True"}
    assert created.status.accepted_names.list_kind == "CronTaskList"
    assert created.status.stored_versions == [VERSION]

    got = ext.read_custom_resource_definition("crontasks.crontask.dev")
    assert got.metadata.uid == created.metadata.uid
    names = [c.metadata.name for c in ext.list_custom_resource_definition().items]
    assert names == ["crontasks.crontask.dev"]

    ext.delete_custom_resource_definition("crontasks.crontask.dev")
    with pytest.raises(ApiException) as err:
        ext.read_custom_resource_definition("crontasks.crontask.dev")
    assert err.value.status == 404


def test_resources_served_once_created_and_gone_after_delete(
    emulator: Emulator, k8s_api_client: Any
) -> None:
    objects: Any = client.CustomObjectsApi(k8s_api_client)
    with pytest.raises(ApiException) as before:
        objects.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert before.value.status == 404

    emulator.create_crd(load_crd())
    objects.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, crontask("a"))
    assert (
        len(objects.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)["items"]) == 1
    )

    ext: Any = client.ApiextensionsV1Api(k8s_api_client)
    ext.delete_custom_resource_definition("crontasks.crontask.dev")
    assert emulator.objects("crontasks.crontask.dev") == []
    with pytest.raises(ApiException) as after:
        objects.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert after.value.status == 404


def test_cluster_scoped_crd(emulator: Emulator, k8s_api_client: Any) -> None:
    emulator.create_crd(_cluster_crd())
    objects: Any = client.CustomObjectsApi(k8s_api_client)
    body = {"apiVersion": "example.dev/v1", "kind": "ClusterThing", "metadata": {"name": "one"}}
    created = objects.create_cluster_custom_object("example.dev", "v1", "clusterthings", body)
    assert "namespace" not in created["metadata"]
    assert objects.get_cluster_custom_object("example.dev", "v1", "clusterthings", "one")
    # A cluster-scoped resource has no namespaced path.
    with pytest.raises(ApiException) as err:
        objects.list_namespaced_custom_object("example.dev", "v1", "default", "clusterthings")
    assert err.value.status == 404


def test_invalid_crd_is_rejected(emulator: Emulator, k8s_api_client: Any) -> None:
    crd = load_crd()
    crd["metadata"]["name"] = "wrong.crontask.dev"
    ext: Any = client.ApiextensionsV1Api(k8s_api_client)
    with pytest.raises(ApiException) as err:
        ext.create_custom_resource_definition(crd)
    assert err.value.status == 422


def test_crd_update_changes_what_is_served(emulator: Emulator, k8s_api_client: Any) -> None:
    ext: Any = client.ApiextensionsV1Api(k8s_api_client)
    emulator.create_crd(load_crd())
    ext.patch_custom_resource_definition(
        "crontasks.crontask.dev", {"spec": {"names": {"shortNames": ["ct", "cts"]}}}
    )
    listing = client.CustomObjectsApi(k8s_api_client).get_api_resources(GROUP, VERSION)
    main = next(r for r in listing.resources if r.name == PLURAL)
    assert main.short_names == ["ct", "cts"]
    assert ext.read_custom_resource_definition("crontasks.crontask.dev").metadata.generation == 2


def test_kubectl_apply_crd_create_then_configure(
    emulator: Emulator, kubectl: Kubectl, tmp_path: Path
) -> None:
    out = kubectl("apply", "-f", str(CRD_PATH))
    assert "customresourcedefinition.apiextensions.k8s.io/crontasks.crontask.dev created" in out
    assert ("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions") in emulator.requests

    assert "unchanged" in kubectl("apply", "-f", str(CRD_PATH))

    changed = copy.deepcopy(load_crd())
    changed["spec"]["names"]["shortNames"] = ["ct", "cts"]
    path = tmp_path / "crd.yaml"
    path.write_text(json.dumps(changed))
    assert "configured" in kubectl("apply", "-f", str(path))
    patches = [
        r
        for r in emulator.request_log
        if r.method == "PATCH" and r.path.endswith("/crontasks.crontask.dev")
    ]
    assert [p.content_type for p in patches] == ["application/merge-patch+json"]
    (crd,) = emulator.objects("customresourcedefinitions.apiextensions.k8s.io")
    assert crd["spec"]["names"]["shortNames"] == ["ct", "cts"]
    assert "kubectl.kubernetes.io/last-applied-configuration" in crd["metadata"]["annotations"]

    assert "crontasks.crontask.dev" in kubectl("get", "crd")
    assert "No resources found" in kubectl.run("get", "cts").stderr
