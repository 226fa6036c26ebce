"""Three ``crontask run --ha --kubernetes`` processes against the project's Kubernetes API
emulator: one Lease per replica (``kubectl get leases -l crontask.dev/member``), CronTasks spread
over the replicas, only a task's owner writes its status, and a killed replica's Lease expires
and its tasks move."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.model import API_GROUP
from reconciler.core.runs import RunStatus
from reconciler.membership.leases import MEMBER_LABEL
from tests.ha.conftest import Cluster
from tests.helpers import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.usefixtures("real_crd")]

# Enough that each of three replicas owns some (rendezvous hashing of random instance ids:
# with 9 tasks one replica got none about 8% of the time, with 30 about once in 60 000).
TASKS = 30


def crontask(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{VERSION}",
        "kind": "CronTask",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"schedule": "* * * * * *", "command": {"args": ["true"]}},
    }


def leases(api: Any) -> list[Any]:
    found: Any = client.CoordinationV1Api(api).list_namespaced_lease(
        "default", label_selector=MEMBER_LABEL
    )
    return list(found.items)


@pytest.mark.slow  # half a minute: a replica killed, and its lease left to run out
def test_replicas_on_leases_share_the_crontasks_and_cover_a_killed_one(
    cluster: Cluster, kubeconfig: Path, k8s_api_client: Any
) -> None:
    objects = client.CustomObjectsApi(k8s_api_client)
    for i in range(TASKS):
        objects.create_namespaced_custom_object(
            API_GROUP, VERSION, "default", PLURAL, crontask(f"ct-{i}")
        )
    flags = ("--kubernetes", "--kubeconfig", str(kubeconfig))
    replicas = [cluster.add(name, *flags) for name in ("a", "b", "c")]
    for replica in replicas:
        replica.wait_log('msg="replicas changed" members=3 ', timeout=40)
    held = {lease.spec.holder_identity for lease in leases(k8s_api_client)}
    assert len(held) == 3
    time.sleep(3)
    since = datetime.now(UTC)
    time.sleep(3)
    owners = {r.task: r.owner for r in cluster.runs() if r.scheduled_at >= since and r.owner}
    assert len(owners) == TASKS
    assert set(owners.values()) <= held
    assert len(set(owners.values())) == 3

    # Every CronTask's status is written, by its owner alone: observedGeneration and a run.
    def statuses() -> bool:
        found: Any = objects.list_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL)
        return all(o.get("status", {}).get("lastRun") for o in found["items"])

    wait_for("every CronTask's lastRun", statuses, 20)

    victim = replicas[0]
    victim.kill()
    killed = datetime.now(UTC)
    lost = {task for task, owner in owners.items() if owner.startswith(victim.id_prefix)}

    def covered() -> bool:
        after = {
            r.task
            for r in cluster.runs()
            if r.scheduled_at > killed
            and r.status is RunStatus.SUCCEEDED
            and r.owner
            and not r.owner.startswith(victim.id_prefix)
        }
        return lost <= after

    wait_for("the killed replica's CronTasks to run elsewhere", covered, 40)
    # Its Lease is no longer counted once expired; the survivors' are renewed.
    for replica in replicas[1:]:
        replica.wait_log('msg="replicas changed" members=2 ', timeout=30)
