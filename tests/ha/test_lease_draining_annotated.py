"""``kubectl annotate lease <each> crontask.dev/draining=true`` on live replicas' Leases: each
replica's next renewal takes the flag off its own Lease (a patch that leaves an annotation out
keeps it), and no replica judges itself draining from what its Lease says, so the tasks keep
running (every task on every replica stopped until restart)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from reconciler.membership.leases import MEMBER_LABEL
from tests.ha.conftest import Cluster
from tests.helpers import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.usefixtures("real_crd")]

FAST = ("--renew-interval", "0.5s", "--renew-deadline", "2s", "--lease-duration", "3s")
DRAINING = "crontask.dev/draining"


def _leases(api: Any) -> list[dict[str, Any]]:
    found: Any = client.CoordinationV1Api(api).list_namespaced_lease(
        "default", label_selector=MEMBER_LABEL, _preload_content=False
    )
    items: list[dict[str, Any]] = json.loads(found.data)["items"]
    return items


def _annotate(api: Any, name: str) -> None:
    """What ``kubectl annotate lease NAME crontask.dev/draining=true`` sends."""
    httpx.patch(
        f"{api.configuration.host}/apis/coordination.k8s.io/v1/namespaces/default/leases/{name}",
        content=json.dumps({"metadata": {"annotations": {DRAINING: "true"}}}),
        headers={"Content-Type": "application/merge-patch+json"},
        timeout=5,
    ).raise_for_status()


@pytest.mark.slow  # ten seconds: two replicas started, and their renewals after the annotation
def test_a_draining_annotation_on_every_lease_stops_no_task(
    cluster: Cluster, kubeconfig: Path, k8s_api_client: Any
) -> None:
    (cluster.tasks / "t.yaml").write_text(
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: tick}\n"
        "spec: {schedule: '* * * * * *', command: {args: ['true']}}\n"
    )
    flags = ("--kubernetes", "--kubeconfig", str(kubeconfig), *FAST)
    replicas = [cluster.add(name, *flags) for name in ("a", "b")]
    for replica in replicas:
        replica.wait_log('msg="replicas changed" members=2 ', timeout=40)
    annotated = {lease["metadata"]["name"]: lease for lease in _leases(k8s_api_client)}
    assert len(annotated) == 2
    for name in annotated:
        _annotate(k8s_api_client, name)
    marked = datetime.now(UTC)

    def renewed_clean() -> bool:
        # Each Lease renewed since it was annotated, and the flag gone with that renewal.
        leases = _leases(k8s_api_client)
        return len(leases) == 2 and all(
            lease["spec"]["renewTime"] != annotated[lease["metadata"]["name"]]["spec"]["renewTime"]
            and DRAINING not in (lease["metadata"].get("annotations") or {})
            for lease in leases
        )

    wait_for("both Leases renewed without the flag", renewed_clean, 20)

    def none_draining() -> bool:
        # As each replica read the Leases at its last renewal (one may precede the other's).
        for replica in replicas:
            members = httpx.get(f"{replica.server}/api/v1/members", timeout=5).json()["items"]
            if [m["draining"] for m in members] != [False, False]:
                return False
        return True

    wait_for("every replica sees both members, neither draining", none_draining, 20)
    wait_for("a run started after the annotation", lambda: _ran_after(cluster, marked), 20)


def _ran_after(cluster: Cluster, at: datetime) -> bool:
    return any(r.scheduled_at > at and r.status.value != "skipped" for r in cluster.runs())
