"""With replicas (``--ha``), a run asked for now of a ``Replace`` task on a replica that does not
run the task, while its run goes on another one, waits in its claim for that run to stop
(``Handover.claim``: the store asks the other replica): it is answered ``pending``, saying the
run it waits for is on another replica, not ``running``. It was answered ``running`` (exit 0,
with a start time) after the answer's whole wait, its command starting 11 s later, or never
(replaced in its turn while it waited); asked of the replica running the task, the same wait was
``pending`` already.

Real ``crontask run --ha`` replicas on the CI's PostgreSQL; the replaced run's command ignores
SIGTERM until the test opens its gate."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from reconciler.api.run_decision import DECISION_WAIT
from reconciler.core.runs import RunStatus
from tests.ha.conftest import Cluster, Replica, cluster
from tests.ha.test_run_now_replace_pending_ha import finished, trigger
from tests.helpers import wait_for

__all__ = ["cluster"]

pytestmark = pytest.mark.slow


def owner_and_other(replicas: list[Replica]) -> tuple[Replica, Replica]:
    """The replica that runs ``default/r`` (the task's owner), and the other one."""
    answer = httpx.get(f"{replicas[0].server}/api/v1/tasks/default/r", timeout=5)
    answer.raise_for_status()
    owner: str = answer.json()["owner"]
    mine = [r for r in replicas if owner.startswith(r.id_prefix)]
    assert len(mine) == 1, owner
    return mine[0], next(r for r in replicas if r is not mine[0])


def test_a_replace_run_waiting_for_a_run_on_another_replica_is_pending(
    cluster: Cluster, tmp_path: Path
) -> None:
    started, gate = tmp_path / "started", tmp_path / "gate"
    # Deaf to SIGTERM until the gate opens (so is the sleep: an ignored signal stays ignored).
    script = f"trap '' TERM; touch {started}; while [ ! -e {gate} ]; do sleep 0.05; done"
    (cluster.tasks / "r.yaml").write_text(
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: r}\n"
        'spec:\n  schedule: "@yearly"\n  concurrencyPolicy: Replace\n'
        f"  command: {{args: [sh, -c, {script!r}]}}\n"
    )
    replicas = [cluster.add(name, "--kill-grace", "60s") for name in "ab"]
    for replica in replicas:
        replica.wait_log('msg="replicas changed" members=2 ', timeout=40)
    owner, other = owner_and_other(replicas)
    try:
        first, _ = trigger(owner)
        assert first["status"] == "running", first
        wait_for("the first run's command", started.exists)
        second, took = trigger(other)
    finally:
        gate.touch()  # else the run replaced outlives the test (a SIGKILLed crontask)

    assert second["status"] == "pending", second
    assert second["startTime"] is None
    assert "waits for the run it replaces on another replica to stop" in second["message"]
    assert took >= DECISION_WAIT, f"answered after {took:.1f}s, before its wait ran out"
    # Once the run it replaces stops (the gate is open), it starts: "pending" was so.
    ended = wait_for("the second run's end", lambda: finished(cluster, second["id"]), 30)
    assert ended.status is RunStatus.SUCCEEDED, ended
    replaced = finished(cluster, first["id"])
    assert replaced is not None
    assert replaced.reason == "Replaced", replaced
    assert [replica.stop() for replica in replicas] == [0, 0]
