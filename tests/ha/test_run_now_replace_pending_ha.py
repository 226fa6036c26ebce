"""With replicas (``--ha``), a run asked for now of a ``Replace`` task while its run goes here
is answered ``pending``, as without: it waits for the run it replaces to stop before it starts.
Its claim is written ``running`` when it is decided, so the store's record did not tell: the
answer was ``running`` in a few milliseconds, the run not started (its process within the
replaced one's kill grace).

A real ``crontask run --ha`` on the CI's PostgreSQL; the replaced run's command ignores SIGTERM
until the test opens its gate."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.api.run_decision import DECISION_WAIT
from reconciler.core.runs import RunRecord, RunStatus
from tests.ha.conftest import Cluster, Replica, cluster
from tests.helpers import wait_for

__all__ = ["cluster"]

pytestmark = pytest.mark.slow


def trigger(replica: Replica) -> tuple[dict[str, Any], float]:
    began = time.monotonic()
    response = httpx.post(f"{replica.server}/api/v1/tasks/default/r/runs", timeout=15)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body, time.monotonic() - began


def finished(cluster: Cluster, run_id: str) -> RunRecord | None:
    record = next((r for r in cluster.runs("default/r") if r.id == run_id), None)
    return record if record is not None and record.status.finished else None


def test_a_replace_run_waiting_for_the_run_it_replaces_is_pending_with_replicas(
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
    alone = cluster.add("a", "--kill-grace", "60s")  # the last --kill-grace counts
    alone.wait_log("task added")
    try:
        first, _ = trigger(alone)
        assert first["status"] == "running", first
        wait_for("the first run's command", started.exists)
        second, took = trigger(alone)
    finally:
        gate.touch()  # else the run replaced outlives the test (a SIGKILLed crontask)

    assert second["status"] == "pending", second
    assert second["startTime"] is None
    assert "waits for the run it replaces to stop" in second["message"]
    assert took >= DECISION_WAIT, f"answered after {took:.1f}s, before its wait ran out"
    ended = wait_for("the second run's end", lambda: finished(cluster, second["id"]), 30)
    assert ended.status is RunStatus.SUCCEEDED, ended
    replaced = finished(cluster, first["id"])
    assert replaced is not None
    assert replaced.reason == "Replaced", replaced
    assert alone.stop() == 0
