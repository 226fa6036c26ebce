"""Leases that anyone allowed to write Leases can leave, that the API server accepts but the
kubernetes client's typed models refuse: a ``renewTime`` in year 0 (Go reads RFC 3339 years
0000-9999), a ``managedFields`` entry of year 0, a ``managedFields`` value nested deeper than
Python's decoder goes. None of them may make a renewal raise (every replica would stop starting
runs), and each is forgotten like any other dead Lease. A renewal's calls keep to its budget."""

from __future__ import annotations

import json
import logging
import uuid
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from kubernetes import client

from reconciler.membership.base import Announcement, MembershipUnavailable
from reconciler.membership.leases import MEMBER_LABEL, LeaseMembership, lease_name

A = Announcement("a:1:aaaa")
B = Announcement("b:1:bbbb")
YEAR_0 = "0000-01-01T00:00:00.000000Z"


@pytest.fixture
def namespace() -> str:
    return f"members-{uuid.uuid4().hex[:8]}"


def _write(api: Any, method: str, path: str, body: dict[str, Any]) -> None:
    """Straight to the API server, as kubectl would: the client's models refuse year 0."""
    kind = "application/merge-patch+json" if method == "PATCH" else "application/json"
    response = httpx.request(
        method,
        f"{api.configuration.host}/apis/coordination.k8s.io/v1/namespaces/{path}",
        content=json.dumps(body),
        headers={"Content-Type": kind},
        timeout=5,
    )
    response.raise_for_status()


def _names(api: Any, namespace: str) -> set[str]:
    found: Any = client.CoordinationV1Api(api).list_namespaced_lease(
        namespace, _preload_content=False
    )
    return {item["metadata"]["name"] for item in json.loads(found.data)["items"]}


def test_a_lease_renewed_in_year_0_is_not_a_member_and_is_forgotten(
    k8s_api_client: Any, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    now = [1000.0]
    a = LeaseMembership(k8s_api_client, namespace, monotonic=lambda: now[0])
    b = LeaseMembership(k8s_api_client, namespace, monotonic=lambda: now[0])
    a.renew(A)
    b.renew(B)
    junk = {
        "metadata": {"name": "junk", "labels": {MEMBER_LABEL: "true"}},
        "spec": {"holderIdentity": "junk", "leaseDurationSeconds": 15, "renewTime": YEAR_0},
    }
    _write(k8s_api_client, "POST", f"{namespace}/leases", junk)
    with caplog.at_level(logging.WARNING, logger="crontask.membership"):
        for _ in range(3):
            assert [m.id for m in a.renew(A)] == [A.id, B.id]
            assert [m.id for m in b.renew(B)] == [A.id, B.id]
    refused = [r for r in caplog.records if "not a member" in r.getMessage()]
    assert len(refused) == 2  # once for each replica, not at every renewal
    now[0] += 15 * 10  # never renewed since: forgotten, as any dead replica's Lease
    a.renew(A)
    assert "junk" not in _names(k8s_api_client, namespace)


def test_our_lease_with_a_managed_fields_entry_of_year_0_is_still_ours(
    k8s_api_client: Any, namespace: str
) -> None:
    a = LeaseMembership(k8s_api_client, namespace)
    b = LeaseMembership(k8s_api_client, namespace)
    a.renew(A)
    entry = {"manager": "x", "operation": "Update", "time": "0000-01-01T00:00:00Z"}
    hostile = {"metadata": {"managedFields": [{**entry, "fieldsType": "FieldsV1"}]}}
    _write(k8s_api_client, "PATCH", f"{namespace}/leases/{lease_name(A.id)}", hostile)
    # The answer to our own write carries it, and so does every list.
    assert [m.id for m in a.renew(A)] == [A.id]
    assert [m.id for m in b.renew(B)] == [A.id, B.id]
    a.leave(A)
    assert _names(k8s_api_client, namespace) == {lease_name(B.id)}


def test_a_lease_nested_deeper_than_pythons_decoder_goes_is_read(
    k8s_api_client: Any, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = LeaseMembership(k8s_api_client, namespace)
    LeaseMembership(k8s_api_client, namespace).renew(B)
    listed = a._leases.list_namespaced_lease

    def deep_managed_fields(*args: Any, **kwargs: Any) -> Any:
        # The API server decodes 10 000 levels; Python's decoder fails near 1 000.
        found = json.loads(listed(*args, **{**kwargs, "_preload_content": False}).data)
        for item in found["items"]:
            item["metadata"]["managedFields"] = [{"fieldsV1": "DEEP"}]
        text = json.dumps(found).replace('"DEEP"', '{"f:a":' * 5000 + "{}" + "}" * 5000)
        return SimpleNamespace(data=text.encode())

    monkeypatch.setattr(a._leases, "list_namespaced_lease", deep_managed_fields)
    assert [m.id for m in a.renew(A)] == [A.id, B.id]


def test_each_call_of_a_renewal_keeps_to_what_is_left_of_its_budget(
    k8s_api_client: Any, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    a = LeaseMembership(k8s_api_client, namespace, monotonic=lambda: now[0])
    timeouts: list[tuple[str, Any]] = []

    def slow(call: str) -> None:
        real = getattr(a._leases, call)

        def one_second(*args: Any, **kwargs: Any) -> Any:
            timeouts.append((call, kwargs.get("_request_timeout")))
            now[0] += 1.0  # each call takes a second
            return real(*args, **kwargs)

        monkeypatch.setattr(a._leases, call, one_second)

    for call in ("patch_namespaced_lease", "create_namespaced_lease", "list_namespaced_lease"):
        slow(call)
    a.renew(Announcement(A.id, budget=2.5))  # the first: patch (404), create, list
    assert timeouts == [
        ("patch_namespaced_lease", (2.5, 2.5)),
        ("create_namespaced_lease", (1.5, 1.5)),
        ("list_namespaced_lease", (0.5, 0.5)),
    ]
    timeouts.clear()
    a.renew(Announcement(A.id, budget=30.0))
    assert timeouts == [
        ("patch_namespaced_lease", (5.0, 10.0)),
        ("list_namespaced_lease", (5.0, 10.0)),
    ]
    timeouts.clear()
    with pytest.raises(MembershipUnavailable, match="time ran out"):
        a.renew(Announcement(A.id, budget=1.0))
    assert [call for call, _ in timeouts] == ["patch_namespaced_lease"]  # no list after it
