"""Through any replica's API: API-owned tasks live in the shared store (every replica sees
them), a manual run works from a replica that does not own the task (and its concurrency policy
holds across replicas), and ``/api/v1/members`` / ``crontask members`` show the replicas."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import httpx
import pytest

from reconciler.core.runs import RunStatus, Trigger
from tests.ha.conftest import Cluster, Replica
from tests.helpers import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]


def document(name: str, args: list[str], schedule: str = "@daily") -> dict[str, Any]:
    return {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": name},
        "spec": {"schedule": schedule, "command": {"args": args}},
    }


def listed(replica: Replica) -> dict[str, Any]:
    items = httpx.get(f"{replica.server}/api/v1/tasks").json()["items"]
    return {t["key"]: t for t in items}


@pytest.mark.slow  # 11-17 s: three replicas, asked through each one's API
def test_api_tasks_members_and_manual_runs_from_any_replica(cluster: Cluster) -> None:
    (cluster.tasks / "keep.yaml").write_text(
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: keep}\n"
        'spec:\n  schedule: "@daily"\n  command: {args: ["true"]}\n'
    )
    a, b = cluster.add("a"), cluster.add("b")
    for replica in (a, b):
        replica.wait_log('msg="replicas changed" members=2 ', timeout=40)

    created = httpx.post(f"{a.server}/api/v1/tasks", json=document("long", ["sleep", "20"]))
    assert created.status_code == 201, created.text
    # b sees it from the shared store, and both agree on who schedules it once each has
    # published the view that declares it (the owner is one of the replicas that declare it).
    wait_for("b to list the API task", lambda: "default/long" in listed(b), 20)

    def agreed() -> bool:
        owners = {listed(replica)["default/long"]["owner"] for replica in (a, b)}
        return len(owners) == 1 and None not in owners

    wait_for("both replicas to agree on its owner", agreed, 20)
    owner = listed(a)["default/long"]["owner"]
    assert owner is not None
    here, there = (a, b) if owner.startswith(a.id_prefix) else (b, a)

    # A manual run through the replica that does not own it runs there...
    first: dict[str, Any] = httpx.post(f"{there.server}/api/v1/tasks/default/long/runs").json()
    wait_for(
        "the manual run to start",
        lambda: any(r.id == first["id"] and r.status is RunStatus.RUNNING for r in cluster.runs()),
    )
    # ...and the owner, asked next, sees it through the store: Forbid skips.
    second = httpx.post(f"{here.server}/api/v1/tasks/default/long/runs").json()
    record = wait_for(
        "the second manual run's record",
        lambda: next(
            (r for r in cluster.runs() if r.id == second["id"] and r.status.finished), None
        ),
    )
    assert record is not None
    assert record.trigger is Trigger.MANUAL
    assert (record.status, record.reason) == (RunStatus.SKIPPED, "ConcurrencyForbid")

    def members() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = httpx.get(f"{a.server}/api/v1/members").json()["items"]
        return items

    # Each replica publishes how many tasks it owns with its next renewal (within 2 s).
    wait_for("keep and long owned", lambda: sum(m["ownedTasks"] for m in members()) == 2)
    assert len(members()) == 2
    assert sum(m["me"] for m in members()) == 1

    def scraped() -> str:
        return httpx.get(f"{b.server}/metrics").text

    assert "crontask_members 2\n" in scraped()
    # The replicas read the same definitions once b has polled the API task a wrote.
    wait_for("agreement", lambda: "crontask_members_disagreeing 0\n" in scraped(), 20)
    out = subprocess.run(
        [sys.executable, "-m", "reconciler", "members", "--server", b.server],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={**os.environ},
    ).stdout
    assert "(this one)" in out
    assert out.count(b.id_prefix) == 1
    assert out.count(a.id_prefix) == 1
