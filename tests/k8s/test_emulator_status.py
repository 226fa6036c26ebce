"""The status subresource: the main resource ignores status, /status changes only status."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import load_crd
from tests.k8s.support import GROUP, PLURAL, VERSION, crontask


@pytest.fixture
def api(k8s_api_client: Any, crontask_crd: dict[str, Any]) -> Any:
    return client.CustomObjectsApi(k8s_api_client)


def _with_status(api: Any, name: str = "s") -> dict[str, Any]:
    api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, crontask(name))
    obj = api.patch_namespaced_custom_object_status(
        GROUP, VERSION, "default", PLURAL, name, {"status": {"runs": 1, "phase": "Idle"}}
    )
    assert isinstance(obj, dict)
    return obj


def test_create_drops_status(api: Any) -> None:
    body = crontask("c")
    body["status"] = {"runs": 9}
    created = api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
    assert "status" not in created


def test_status_write_changes_only_status_and_keeps_generation(api: Any) -> None:
    obj = _with_status(api)
    assert obj["status"] == {"runs": 1, "phase": "Idle"}
    assert obj["metadata"]["generation"] == 1

    obj["status"]["runs"] = 2
    obj["spec"]["schedule"] = "@daily"  # ignored on /status
    obj["metadata"]["labels"] = {"sneaky": "yes"}  # ignored on /status
    updated = api.replace_namespaced_custom_object_status(
        GROUP, VERSION, "default", PLURAL, "s", obj
    )
    assert updated["status"]["runs"] == 2
    assert updated["spec"]["schedule"] == "*/5 * * * *"
    assert "labels" not in updated["metadata"]
    assert updated["metadata"]["generation"] == 1
    assert int(updated["metadata"]["resourceVersion"]) > int(obj["metadata"]["resourceVersion"])

    patched = api.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "s",
        {"spec": {"suspend": True}, "status": {"phase": "Running"}},
    )
    assert patched["status"] == {"runs": 2, "phase": "Running"}
    assert "suspend" not in patched["spec"]
    assert patched["metadata"]["generation"] == 1


def test_main_resource_write_ignores_status(api: Any) -> None:
    obj = _with_status(api)
    obj["status"] = {"runs": 100}
    obj["spec"]["suspend"] = True
    updated = api.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "s", obj)
    assert updated["status"] == {"runs": 1, "phase": "Idle"}
    assert updated["spec"]["suspend"] is True
    assert updated["metadata"]["generation"] == 2

    patched = api.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "s", {"status": {"runs": 5}}
    )
    assert patched["status"] == {"runs": 1, "phase": "Idle"}
    # A status-only patch of the main resource changes nothing at all.
    assert patched["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]


def test_get_status_subresource(api: Any) -> None:
    _with_status(api)
    got = api.get_namespaced_custom_object_status(GROUP, VERSION, "default", PLURAL, "s")
    assert got["status"]["runs"] == 1
    assert got["metadata"]["name"] == "s"


def test_without_status_subresource_status_is_ordinary(
    emulator: Emulator, k8s_api_client: Any
) -> None:
    crd = load_crd()
    del crd["spec"]["versions"][0]["subresources"]
    emulator.create_crd(crd)
    api: Any = client.CustomObjectsApi(k8s_api_client)
    body = crontask("plain")
    body["status"] = {"runs": 3}
    created = api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
    assert created["status"] == {"runs": 3}
    patched = api.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "plain", {"status": {"runs": 4}}
    )
    assert patched["status"] == {"runs": 4}
    assert patched["metadata"]["generation"] == 2  # status is part of the "spec" here
    with pytest.raises(ApiException) as err:
        api.patch_namespaced_custom_object_status(
            GROUP, VERSION, "default", PLURAL, "plain", {"status": {"runs": 5}}
        )
    assert err.value.status == 404
