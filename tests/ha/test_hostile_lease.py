"""One Lease with the member label and a ``renewTime`` in year 0 (the API server accepts it: Go
reads RFC 3339 years 0000-9999; the kubernetes client's models refuse it), written by anyone
who may write Leases: the replicas refuse that Lease and go on renewing and starting runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.membership.leases import MEMBER_LABEL
from tests.ha.conftest import Cluster
from tests.helpers import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.usefixtures("real_crd")]

DEADLINE = 2.0
FAST = ("--renew-interval", "0.5s", "--renew-deadline", f"{DEADLINE}s", "--lease-duration", "3s")


@pytest.mark.slow  # ten seconds: two replicas, and a renew deadline waited out
def test_a_lease_renewed_in_year_0_fences_no_replica(
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
    junk = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "junk", "labels": {MEMBER_LABEL: "true"}},
        "spec": {
            "holderIdentity": "junk",
            "leaseDurationSeconds": 15,
            "renewTime": "0000-01-01T00:00:00.000000Z",
        },
    }
    httpx.post(
        f"{k8s_api_client.configuration.host}/apis/coordination.k8s.io/v1/namespaces/default/leases",
        content=json.dumps(junk),
        headers={"Content-Type": "application/json"},
        timeout=5,
    ).raise_for_status()
    written = datetime.now(UTC)
    # Past the renew deadline since the junk Lease: a fenced replica would start nothing now.
    after = written + timedelta(seconds=DEADLINE + 1)
    wait_for("a run after the renew deadline", lambda: _runs_after(cluster, after), 20)
    for replica in replicas:
        assert "not starting runs" not in replica.log()
        assert "a Lease with the member label is not a member" in replica.log()


def _runs_after(cluster: Cluster, at: datetime) -> bool:
    return any(r.scheduled_at > at and r.status.value != "skipped" for r in cluster.runs())
