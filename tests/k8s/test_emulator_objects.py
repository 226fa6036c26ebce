"""Namespaced custom objects: create/get/list/replace/patch/delete and metadata semantics."""

from __future__ import annotations

import re
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.k8s.emulator import Emulator
from tests.k8s.support import GROUP, PLURAL, VERSION, crontask, error_body, http_call

pytestmark = pytest.mark.usefixtures("crontask_crd")

BASE = f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"


@pytest.fixture
def api(k8s_api_client: Any) -> Any:
    return client.CustomObjectsApi(k8s_api_client)


def _create(api: Any, name: str, namespace: str = "default", **kw: Any) -> dict[str, Any]:
    obj = api.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, crontask(name, namespace, **kw)
    )
    assert isinstance(obj, dict)
    return obj


def _error(exc: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body = error_body(exc.value)
    assert body["kind"] == "Status"
    assert body["status"] == "Failure"
    assert body["code"] == exc.value.status
    assert isinstance(body, dict)
    return body


def test_create_sets_system_metadata(emulator: Emulator) -> None:
    body = crontask("backup")
    del body["metadata"]["namespace"]  # defaulted from the URL
    status, _, created = http_call(emulator, "POST", BASE, body)
    assert status == 201
    meta = created["metadata"]
    assert meta["namespace"] == "default"
    assert re.fullmatch(r"[0-9a-f-]{36}", meta["uid"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    assert meta["resourceVersion"].isdigit()
    assert meta["generation"] == 1
    assert (created["apiVersion"], created["kind"]) == (f"{GROUP}/{VERSION}", "CronTask")
    assert emulator.objects("crontasks.crontask.dev") == [created]
    assert emulator.objects("ct") == [created]


def test_namespace_in_body_must_match_url(emulator: Emulator) -> None:
    status, _, body = http_call(emulator, "POST", BASE, crontask("x", namespace="other"))
    assert status == 400
    assert body["reason"] == "BadRequest"


def test_create_twice_is_already_exists(api: Any) -> None:
    _create(api, "dup")
    with pytest.raises(ApiException) as err:
        _create(api, "dup")
    body = _error(err)
    assert (body["code"], body["reason"]) == (409, "AlreadyExists")
    assert body["message"] == 'crontasks.crontask.dev "dup" already exists'
    assert body["details"] == {"name": "dup", "group": GROUP, "kind": PLURAL}


@pytest.mark.parametrize("name", ["Upper", "under_score", "-lead", "trail-", "a" * 254])
def test_names_must_be_dns_subdomains(api: Any, name: str) -> None:
    with pytest.raises(ApiException) as err:
        _create(api, name)
    body = _error(err)
    assert (body["code"], body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "metadata.name"


def test_generate_name(api: Any) -> None:
    body = crontask("")
    body["metadata"] = {"generateName": "run-"}
    obj = api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
    assert re.fullmatch(r"run-[a-z0-9]{5}", obj["metadata"]["name"])


def test_get_missing_is_not_found(api: Any) -> None:
    with pytest.raises(ApiException) as err:
        api.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "nope")
    body = _error(err)
    assert (body["code"], body["reason"]) == (404, "NotFound")
    assert body["message"] == 'crontasks.crontask.dev "nope" not found'


def test_resource_version_is_a_global_increasing_counter(
    api: Any, emulator: Emulator, k8s_api_client: Any
) -> None:
    first = int(_create(api, "a")["metadata"]["resourceVersion"])
    lease = client.V1Lease(metadata=client.V1ObjectMeta(name="l"))
    coord: Any = client.CoordinationV1Api(k8s_api_client)
    other = coord.create_namespaced_lease("default", lease)
    second = int(_create(api, "b")["metadata"]["resourceVersion"])
    assert first < int(other.metadata.resource_version) < second
    listed = api.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert listed["kind"] == "CronTaskList"
    assert listed["metadata"]["resourceVersion"] == emulator.resource_version == str(second)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("team=a", ["a1", "a2"]),
        ("team==a", ["a1", "a2"]),
        ("team!=a", ["b1", "none"]),
        ("team in (a, b)", ["a1", "a2", "b1"]),
        ("team notin (a)", ["b1", "none"]),
        ("team", ["a1", "a2", "b1"]),
        ("!team", ["none"]),
        ("team=a,tier=web", ["a2"]),
    ],
)
def test_list_label_selector(api: Any, selector: str, expected: list[str]) -> None:
    _create(api, "a1", labels={"team": "a"})
    _create(api, "a2", labels={"team": "a", "tier": "web"})
    _create(api, "b1", labels={"team": "b"})
    _create(api, "none")
    listed = api.list_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, label_selector=selector
    )
    assert [i["metadata"]["name"] for i in listed["items"]] == expected


def test_list_namespaces_and_all_namespaces(api: Any) -> None:
    _create(api, "x", namespace="default")
    _create(api, "y", namespace="team-b")
    only_b = api.list_namespaced_custom_object(GROUP, VERSION, "team-b", PLURAL)["items"]
    assert [i["metadata"]["name"] for i in only_b] == ["y"]
    everywhere = api.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in everywhere] == [
        ("default", "x"),
        ("team-b", "y"),
    ]


def test_list_limit_and_continue(api: Any) -> None:
    for name in ("a", "b", "c", "d", "e"):
        _create(api, name)
    seen, token, pages = [], None, 0
    while True:
        kwargs = {"limit": 2} | ({"_continue": token} if token else {})
        page = api.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, **kwargs)
        seen += [i["metadata"]["name"] for i in page["items"]]
        pages += 1
        token = page["metadata"].get("continue")
        if not token:
            break
        assert page["metadata"]["remainingItemCount"] == 5 - len(seen)
    assert (seen, pages) == (["a", "b", "c", "d", "e"], 3)


def test_replace_requires_resource_version(api: Any) -> None:
    obj = _create(api, "r")
    del obj["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as err:
        api.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "r", obj)
    body = _error(err)
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.resourceVersion"


def test_replace_bumps_generation_only_for_spec_changes(api: Any) -> None:
    obj = _create(api, "g")
    obj["metadata"]["labels"] = {"touched": "yes"}
    relabelled = api.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "g", obj)
    assert relabelled["metadata"]["generation"] == 1
    assert relabelled["metadata"]["labels"] == {"touched": "yes"}
    assert int(relabelled["metadata"]["resourceVersion"]) > int(obj["metadata"]["resourceVersion"])

    relabelled["spec"]["schedule"] = "0 0 * * *"
    respec = api.replace_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "g", relabelled
    )
    assert respec["metadata"]["generation"] == 2
    # Immutable metadata cannot be changed by a write.
    respec["metadata"]["uid"] = "forged"
    respec["metadata"]["generation"] = 40
    kept = api.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "g", respec)
    assert kept["metadata"]["uid"] == obj["metadata"]["uid"]
    assert kept["metadata"]["generation"] == 2


def test_unchanged_write_is_a_no_op(api: Any, emulator: Emulator) -> None:
    obj = _create(api, "same")
    again = api.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "same", obj)
    assert again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    patched = api.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "same", {"spec": {"schedule": obj["spec"]["schedule"]}}
    )
    assert patched["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    assert emulator.resource_version == obj["metadata"]["resourceVersion"]


def test_merge_patch(api: Any, emulator: Emulator) -> None:
    _create(api, "m", labels={"keep": "1", "drop": "1"}, suspend=False)
    patched = api.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "m",
        {"metadata": {"labels": {"drop": None}}, "spec": {"suspend": True}},
    )
    assert patched["metadata"]["labels"] == {"keep": "1"}
    assert patched["spec"] == {"schedule": "*/5 * * * *", "suspend": True}
    assert patched["metadata"]["generation"] == 2
    assert emulator.request_log[-1].content_type == "application/merge-patch+json"


def test_json_patch(api: Any) -> None:
    _create(api, "j")
    patched = api.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "j",
        [
            {"op": "test", "path": "/spec/schedule", "value": "*/5 * * * *"},
            {"op": "replace", "path": "/spec/schedule", "value": "@hourly"},
            {"op": "add", "path": "/spec/command", "value": {"args": ["a"]}},
            {"op": "add", "path": "/spec/command/args/-", "value": "b"},
            {"op": "add", "path": "/metadata/labels", "value": {"a~b/c": "x"}},
        ],
        _content_type="application/json-patch+json",
    )
    assert patched["spec"] == {"schedule": "@hourly", "command": {"args": ["a", "b"]}}
    assert patched["metadata"]["labels"] == {"a~b/c": "x"}


def test_json_patch_failed_test_is_unprocessable(api: Any) -> None:
    _create(api, "jt")
    with pytest.raises(ApiException) as err:
        api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            "jt",
            [{"op": "test", "path": "/spec/schedule", "value": "other"}],
            _content_type="application/json-patch+json",
        )
    assert err.value.status == 422


def test_strategic_merge_patch_is_unsupported_for_custom_resources(emulator: Emulator) -> None:
    http_call(emulator, "POST", BASE, crontask("s"))
    status, _, body = http_call(
        emulator,
        "PATCH",
        f"{BASE}/s",
        {"spec": {"suspend": True}},
        {"Content-Type": "application/strategic-merge-patch+json"},
    )
    assert (status, body["reason"]) == (415, "UnsupportedMediaType")


def test_delete_returns_the_object(api: Any, emulator: Emulator) -> None:
    created = _create(api, "d")
    status, _, gone = http_call(emulator, "DELETE", f"{BASE}/d")
    assert status == 200
    assert gone["kind"] == "CronTask"
    assert gone["metadata"]["uid"] == created["metadata"]["uid"]
    assert int(gone["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    with pytest.raises(ApiException) as err:
        api.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "d")
    assert err.value.status == 404
    with pytest.raises(ApiException) as again:
        api.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "d")
    assert again.value.status == 404


def test_delete_precondition(api: Any) -> None:
    _create(api, "p")
    with pytest.raises(ApiException) as err:
        api.delete_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            "p",
            body={"preconditions": {"resourceVersion": "1"}},
        )
    assert (err.value.status, _error(err)["reason"]) == (409, "Conflict")


def test_finalizers_hold_deletion(api: Any, emulator: Emulator) -> None:
    body = crontask("f")
    body["metadata"]["finalizers"] = ["crontask.dev/cleanup"]
    api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
    pending = api.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "f")
    assert pending["metadata"]["deletionTimestamp"]
    assert len(emulator.objects("crontasks.crontask.dev")) == 1
    api.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "f", {"metadata": {"finalizers": None}}
    )
    assert emulator.objects("crontasks.crontask.dev") == []


def test_delete_collection_by_label(api: Any, emulator: Emulator) -> None:
    _create(api, "keep", labels={"app": "x"})
    _create(api, "go1", labels={"app": "y"})
    _create(api, "go2", labels={"app": "y"})
    api.delete_collection_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, label_selector="app=y"
    )
    assert [o["metadata"]["name"] for o in emulator.objects("crontasks.crontask.dev")] == ["keep"]
