"""With replicas, each task's last-success and last-failure timestamps are exported by its owner
only, from the shared run history, and move with the task when its owner leaves."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import open_store
from tests.ha.conftest import Cluster, Replica
from tests.helpers import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

TASKS = 24  # all on one replica by chance: 2 in 2**24
SUCCESS = "crontask_task_last_success_timestamp_seconds"
FAILURE = "crontask_task_last_failure_timestamp_seconds"


def outcomes(replica: Replica) -> dict[tuple[str, str], float]:
    """(series, task) -> value of the last-outcome series ``replica`` exports."""
    response = httpx.get(f"{replica.server}/metrics", timeout=10)
    response.raise_for_status()
    return {
        (s.name, s.labels["task"]): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
        if s.name in (SUCCESS, FAILURE)
    }


def owned(replica: Replica) -> set[str]:
    return {key for _, key in outcomes(replica)}


@pytest.mark.slow  # 8-18 s: replicas running tasks until each owner has scraped history
def test_each_task_s_outcomes_come_from_the_history_on_its_owner_only(
    cluster: Cluster,
) -> None:
    long_ago = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
    expected: dict[tuple[str, str], float] = {}
    history: list[RunRecord] = []
    for i in range(TASKS):
        key = f"default/yearly-{i}"
        (cluster.tasks / f"yearly-{i}.yaml").write_text(
            "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"
            f"metadata: {{name: yearly-{i}}}\n"
            'spec:\n  schedule: "0 0 1 1 *"\n  command: {args: ["true"]}\n'
        )
        for day, status in ((0, RunStatus.SUCCEEDED), (1 + i % 2, RunStatus.FAILED)):
            at = long_ago + timedelta(days=day, minutes=i)
            ended = at + timedelta(seconds=3 + i)
            history.append(
                RunRecord(
                    id=run_id(key, at),
                    task=key,
                    scheduled_at=at,
                    trigger=Trigger.SCHEDULE,
                    status=status,
                    started_at=at,
                    finished_at=ended,
                    exit_code=0 if status is RunStatus.SUCCEEDED else 1,
                )
            )
            expected[(SUCCESS if day == 0 else FAILURE, key)] = ended.timestamp()
    store = open_store(cluster.db)
    try:
        store.save_many(history)
    finally:
        store.close()

    a, b = cluster.add("a"), cluster.add("b")
    for replica in (a, b):
        replica.wait_log('msg="replicas changed" members=2 ', timeout=40)

    def split() -> bool:
        mine_a, mine_b = owned(a), owned(b)
        return bool(mine_a and mine_b) and not mine_a & mine_b and len(mine_a | mine_b) == TASKS

    wait_for("the tasks split between a and b, each exported by one", split, 30)
    assert outcomes(a) | outcomes(b) == expected

    assert a.proc is not None
    a.proc.send_signal(signal.SIGTERM)
    assert a.proc.wait(timeout=30) == 0
    wait_for("b to export every task", lambda: len(owned(b)) == TASKS, 30)
    assert outcomes(b) == expected
