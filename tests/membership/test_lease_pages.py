"""The member Leases are read a page at a time, and of each only what a renewal reads is kept:
anyone may write a Lease as large as the API server takes (about a megabyte), and every
renewal held the whole list at once (300 Leases of 200 KB took a replica from 152 to 235 MB)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kubernetes import client

from reconciler.membership import leases as leases_module
from reconciler.membership.base import Announcement
from reconciler.membership.leases import MEMBER_LABEL, LeaseMembership, lease_name

A = "a:1:aaaa"
OTHERS = 120  # three pages of 50 with ours


def _member_lease(api: Any, namespace: str, holder: str, notes: dict[str, str]) -> None:
    body: Any = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": lease_name(holder),
            "namespace": namespace,
            "labels": {MEMBER_LABEL: "true"},
            "annotations": notes,
        },
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15},
    }
    client.CoordinationV1Api(api).create_namespaced_lease(namespace, body)


def test_every_member_is_read_over_pages_keeping_only_what_a_renewal_reads(
    k8s_api_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace = f"members-{uuid.uuid4().hex[:8]}"
    bulk = "x" * 20_000
    for n in range(OTHERS):
        holder = f"h{n:03d}:1:t{n:03d}"
        notes = {"example.com/bulk": bulk, "crontask.dev/digest": f"d{n}"}
        if n == 0:
            notes["crontask.dev/address"] = "y" * 5000  # longer than any a member writes
        _member_lease(k8s_api_client, namespace, holder, notes)
    a = LeaseMembership(k8s_api_client, namespace, monotonic=lambda: 1000.0)
    pages: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    real_list, real_slim = a._leases.list_namespaced_lease, leases_module._slim

    def listing(*args: Any, **kwargs: Any) -> Any:
        pages.append(kwargs)
        return real_list(*args, **kwargs)

    def slim(lease: Any) -> dict[str, Any]:
        kept.append(real_slim(lease))
        return kept[-1]

    monkeypatch.setattr(a._leases, "list_namespaced_lease", listing)
    monkeypatch.setattr(leases_module, "_slim", slim)
    found = a.renew(Announcement(A, digest="d"))
    assert len(found) == OTHERS + 1
    assert {m.digest for m in found if m.id != A} == {f"d{n}" for n in range(OTHERS)}
    assert next(m for m in found if m.id == "h000:1:t000").address is None
    assert [p["limit"] for p in pages] == [50, 50, 50]
    assert "_continue" not in pages[0]
    assert all(p["_continue"] for p in pages[1:])
    assert len(kept) == OTHERS + 1
    assert max(len(repr(lease)) for lease in kept) < 1000  # no bulk annotation is kept
