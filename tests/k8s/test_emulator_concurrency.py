"""Optimistic concurrency: a stale metadata.resourceVersion answers 409 Conflict."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.k8s.support import GROUP, PLURAL, VERSION, crontask, error_body


@pytest.fixture
def api(k8s_api_client: Any, crontask_crd: dict[str, Any]) -> Any:
    return client.CustomObjectsApi(k8s_api_client)


def _assert_conflict(err: pytest.ExceptionInfo[ApiException], name: str) -> None:
    assert err.value.status == 409
    body = error_body(err.value)
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert (body["status"], body["reason"], body["code"]) == ("Failure", "Conflict", 409)
    assert body["message"] == (
        f'Operation cannot be fulfilled on crontasks.crontask.dev "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again"
    )
    assert body["details"] == {"name": name, "group": GROUP, "kind": PLURAL}


def _stale(api: Any) -> dict[str, Any]:
    """An object whose copy in hand is one write behind."""
    stale = api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, crontask("o"))
    api.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "o", {"spec": {"suspend": True}}
    )
    assert isinstance(stale, dict)
    return stale


def test_put_with_stale_resource_version(api: Any) -> None:
    stale = _stale(api)
    stale["spec"]["schedule"] = "@hourly"
    with pytest.raises(ApiException) as err:
        api.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "o", stale)
    _assert_conflict(err, "o")


def test_patch_carrying_stale_resource_version(api: Any) -> None:
    stale = _stale(api)
    patch = {"metadata": {"resourceVersion": stale["metadata"]["resourceVersion"]}, "spec": {}}
    with pytest.raises(ApiException) as err:
        api.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "o", patch)
    _assert_conflict(err, "o")
    current = api.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "o")
    patch["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    patch["spec"] = {"schedule": "@daily"}
    ok = api.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "o", patch)
    assert ok["spec"]["schedule"] == "@daily"


def test_status_writes_with_stale_resource_version(api: Any) -> None:
    stale = _stale(api)
    stale["status"] = {"runs": 1}
    with pytest.raises(ApiException) as put:
        api.replace_namespaced_custom_object_status(GROUP, VERSION, "default", PLURAL, "o", stale)
    _assert_conflict(put, "o")
    with pytest.raises(ApiException) as patch:
        api.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            "o",
            {"metadata": {"resourceVersion": stale["metadata"]["resourceVersion"]}, "status": {}},
        )
    _assert_conflict(patch, "o")


def test_read_modify_write_loop_succeeds_with_fresh_version(api: Any) -> None:
    _stale(api)
    current = api.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "o")
    current["status"] = {"runs": 7}
    written = api.replace_namespaced_custom_object_status(
        GROUP, VERSION, "default", PLURAL, "o", current
    )
    assert written["status"] == {"runs": 7}
