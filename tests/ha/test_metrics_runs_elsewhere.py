"""With replicas, a task's ``crontask_runs_total`` counts every attempt of it on its owner, the
only replica that exports it, wherever the attempt ran: a manual run is asked of any replica
and runs there, and its end is heard there only. The owner reads those ends from the shared
run history with its checks (``sinks.metrics_elsewhere``), each once: a later check, whose
window overlaps the one before, does not count them again."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.ha.conftest import Cluster, Replica
from tests.helpers import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

NEXT = "crontask_task_next_run_timestamp_seconds"
RUNS = "crontask_runs_total"
SHORT, FORBID = "ha/m-short", "ha/m-forbid"


def task(name: str, args: str, policy: str) -> str:
    return (
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"
        f"metadata: {{name: {name}, namespace: ha}}\n"
        f'spec:\n  schedule: "0 0 1 1 *"\n  concurrencyPolicy: {policy}\n'
        f"  command: {{args: {args}}}\n"
    )


def series(replica: Replica) -> dict[tuple[str, str, str], float]:
    """(name, task, status) -> value of ``replica``'s task series (status "" if none)."""
    response = httpx.get(f"{replica.server}/metrics", timeout=10)
    response.raise_for_status()
    return {
        (s.name, s.labels["task"], s.labels.get("status", "")): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
        if "task" in s.labels
    }


def counted(replica: Replica, key: str, status: str) -> float:
    return series(replica).get((RUNS, key, status), 0.0)


def trigger(replica: Replica, key: str) -> str:
    answer = httpx.post(f"{replica.server}/api/v1/tasks/{key}/runs", timeout=10)
    assert answer.status_code in (200, 201, 202), answer.text
    status: str = answer.json()["status"]
    return status


@pytest.mark.slow  # 20-50 s: three replicas, and the owner's checks 15 s apart
def test_the_owner_counts_manual_runs_and_skips_of_other_replicas_once(
    cluster: Cluster,
) -> None:
    (cluster.tasks / "short.yaml").write_text(task("m-short", '["true"]', "Allow"))
    (cluster.tasks / "forbid.yaml").write_text(task("m-forbid", '["sleep", "2"]', "Forbid"))
    replicas = [cluster.add(name) for name in ("a", "b", "c")]
    for replica in replicas:
        replica.wait_log('msg="replicas changed" members=3 ', timeout=40)

    def owners(key: str) -> list[Replica]:
        return [r for r in replicas if (NEXT, key, "") in series(r)]

    wait_for("one owner of each task", lambda: all(len(owners(k)) == 1 for k in (SHORT, FORBID)))
    [owner] = owners(SHORT)
    others = [r for r in replicas if r is not owner]
    for i in range(6):
        assert trigger(others[i % 2], SHORT) in ("running", "succeeded")
    wait_for(
        "6 manual runs of other replicas ended in the store",
        lambda: sum(r.status.value == "succeeded" for r in cluster.runs(SHORT)) == 6,
    )
    wait_for("the owner to count them", lambda: counted(owner, SHORT, "succeeded") >= 6, timeout=60)
    assert counted(owner, SHORT, "succeeded") == 6
    for other in others:
        assert (RUNS, SHORT, "succeeded") not in series(other)

    # A skip of a manual run at a replica that does not own the task counts too.
    [forbid_owner] = owners(FORBID)
    elsewhere = next(r for r in replicas if r is not forbid_owner)
    assert trigger(elsewhere, FORBID) == "running"
    assert trigger(elsewhere, FORBID) == "skipped"
    # One more run of the first task: the check that counts it reads the window of the
    # runs counted before again, which must not count them twice.
    assert trigger(others[0], SHORT) in ("running", "succeeded")
    wait_for(
        "the owners to count the skip, the Forbid run and the 7th run",
        lambda: (
            counted(forbid_owner, FORBID, "skipped") >= 1
            and counted(forbid_owner, FORBID, "succeeded") >= 1
            and counted(owner, SHORT, "succeeded") >= 7
        ),
        timeout=60,
    )
    assert counted(owner, SHORT, "succeeded") == 7
    assert counted(forbid_owner, FORBID, "skipped") == 1
    assert counted(forbid_owner, FORBID, "succeeded") == 1
