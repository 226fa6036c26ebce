"""A replica frozen (SIGSTOP) past its lease while one of its runs goes on: another replica
marks the run ``interrupted`` (``ProcessDied``) and takes its tasks. Resumed, the frozen one
stops the run and hears the record the other wrote (``controller.disowned``): its metrics take
no duration from it (its end is when it was found, the freeze included, as after a crash), and
count no end of it (the replica its task went to counts it, README "Metrics")."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.ha.conftest import Cluster, Replica
from tests.ha.frozen_runs import (
    alive,
    frozen_and_other,
    pid_task,
    run_then_freeze,
    wait_interrupted,
)
from tests.ha.test_frozen_replica_lapsed import NOT_RECORDED_LOG
from tests.helpers import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

TASK = "default/rp"


def _samples(replica: Replica) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(f"{replica.server}/metrics", timeout=10)
    response.raise_for_status()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


@pytest.mark.slow  # about half a minute: a replica frozen past its lease
def test_a_run_another_replica_marked_while_this_one_was_frozen_is_no_duration_here(
    cluster: Cluster, tmp_path: Path
) -> None:
    pids, gate = pid_task(cluster, tmp_path, "Forbid")
    frozen, _other = frozen_and_other(cluster)  # the other marks the run
    try:
        first, old = run_then_freeze(frozen, pids)
        assert frozen.proc is not None
        wait_interrupted(cluster, first["id"])
        frozen.proc.send_signal(signal.SIGCONT)
        wait_for("the lapsed run's command to end", lambda: not alive(old), timeout=20)
        frozen.wait_log(NOT_RECORDED_LOG, timeout=20)

        found = _samples(frozen)
        # No attempt ended here: the freeze is no run's duration.
        assert found[("crontask_run_duration_seconds_count", frozenset())] == 0, found
        task = frozenset({("task", TASK)})
        assert ("crontask_task_last_run_duration_seconds", task) not in found, found
        # Whether its task came back here or not, this replica counts no end of it.
        interrupted_here = frozenset({("task", TASK), ("status", "interrupted")})
        assert found.get(("crontask_runs_total", interrupted_here), 0) == 0, found
    finally:
        gate.touch()
        if frozen.proc is not None and frozen.proc.poll() is None:
            frozen.proc.send_signal(signal.SIGCONT)
