"""The task and the two replicas of the tests of a replica frozen (SIGSTOP) past its lease
while its run goes on: ``test_frozen_replica_replaced``, ``_lapsed``, ``_lapsed_metrics``."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx

from reconciler.core.runs import RunRecord, RunStatus
from tests.ha.conftest import Cluster, Replica
from tests.ha.test_frozen_replica import _TIMING, _stopped
from tests.ha.test_replicas import members
from tests.helpers import wait_for


def pid_task(
    cluster: Cluster, tmp_path: Path, policy: str, *, gate_per_run: bool = False
) -> tuple[Path, Path]:
    """Task ``default/rp`` (``@yearly``, run by hand), whose each run writes its shell's pid in
    ``pids/RUN_ID`` and runs until SIGTERM (exit 3) or ``gate`` (or, with ``gate_per_run``,
    ``gate.RUN_ID``) exists: ``(pids, gate)``."""
    pids, gate = tmp_path / "pids", tmp_path / "gate"
    pids.mkdir()
    until = f"[ ! -e {gate} ]" + (f" && [ ! -e {gate}.$CRONTASK_RUN_ID ]" if gate_per_run else "")
    script = (
        f"echo $$ > {pids}/$CRONTASK_RUN_ID.tmp && mv {pids}/$CRONTASK_RUN_ID.tmp "
        f"{pids}/$CRONTASK_RUN_ID; trap 'exit 3' TERM; while {until}; do sleep 0.1; done"
    )
    (cluster.tasks / "rp.yaml").write_text(
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: rp}\n"
        f'spec:\n  schedule: "@yearly"\n  concurrencyPolicy: {policy}\n'
        f"  command: {{args: [sh, -c, {script!r}]}}\n"
    )
    return pids, gate


def frozen_and_other(cluster: Cluster) -> tuple[Replica, Replica]:
    """Two replicas with the short lease of ``test_frozen_replica``, each seeing both."""
    frozen = cluster.add("frozen", *_TIMING)
    other = cluster.add("other", *_TIMING)
    members(frozen, 2)
    members(other, 2)
    return frozen, other


def trigger(replica: Replica) -> dict[str, Any]:
    """A run of ``default/rp`` asked of ``replica``: its answer."""
    response = httpx.post(f"{replica.server}/api/v1/tasks/default/rp/runs", timeout=30)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def record(cluster: Cluster, run_id: str) -> RunRecord | None:
    return next((r for r in cluster.runs("default/rp") if r.id == run_id), None)


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def run_then_freeze(frozen: Replica, pids: Path) -> tuple[dict[str, Any], int]:
    """A run asked of ``frozen``, going; then ``frozen`` stopped (SIGSTOP): the run's answer
    and its command's pid."""
    first = trigger(frozen)
    assert first["status"] == "running", first
    mark = pids / first["id"]
    wait_for("the first run's command", mark.exists)
    pid = int(mark.read_text())
    assert frozen.proc is not None
    frozen.proc.send_signal(signal.SIGSTOP)
    wait_for("the replica to stop", lambda: _stopped(frozen))
    return first, pid


def wait_interrupted(cluster: Cluster, run_id: str) -> RunRecord:
    """The run's record once another replica marked it ``interrupted`` (its lease out)."""

    def interrupted() -> bool:
        found = record(cluster, run_id)
        return found is not None and found.status is RunStatus.INTERRUPTED

    wait_for("the other replica to mark the run interrupted", interrupted, timeout=30)
    marked = record(cluster, run_id)
    assert marked is not None
    return marked
