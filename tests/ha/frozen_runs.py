"""The task and the two replicas of the tests of a replica frozen (SIGSTOP) past its lease
while its run goes on: ``test_frozen_replica_replaced``, ``_lapsed``, ``_lapsed_metrics``."""

from __future__ import annotations

from pathlib import Path

from tests.ha.conftest import Cluster, Replica
from tests.ha.test_frozen_replica import _TIMING
from tests.ha.test_replicas import members


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
