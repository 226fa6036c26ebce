"""A replica frozen (SIGSTOP) past its lease while one of its runs goes on, with no stop asked:
once resumed, it stops that run, whose record the others wrote, and leaves that record as it is.

The other replica found the lease lapsed, marked the run interrupted and took the task (here a
run asked of it under ``Forbid``, which the interrupted record no longer holds back). The frozen
one, resumed, let its command run to its end beside the new one, then wrote its end over the
interrupted record; a command that ended during the freeze had its end written over it at once.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from reconciler.core.runs import PROCESS_DIED, RunStatus
from tests.ha.conftest import Cluster
from tests.ha.frozen_runs import (
    alive,
    frozen_and_other,
    pid_task,
    record,
    run_then_freeze,
    trigger,
    wait_interrupted,
)
from tests.helpers import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

DISOWNED_LOG = "run stopped: this replica's membership had lapsed"
NOT_RECORDED_LOG = "run ended here, not recorded"


def _zombie(pid: int) -> bool:
    """Its command exited, unheard: its parent (the replica) is frozen."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.slow  # about half a minute: a replica frozen past its lease
@pytest.mark.parametrize("ended", [False, True], ids=["running", "ended-while-frozen"])
def test_a_run_marked_interrupted_while_its_replica_was_frozen_is_not_its_own_once_resumed(
    cluster: Cluster, tmp_path: Path, ended: bool
) -> None:
    pids, gate = pid_task(cluster, tmp_path, "Forbid", gate_per_run=True)
    frozen, other = frozen_and_other(cluster)
    try:
        first, old = run_then_freeze(frozen, pids)
        assert frozen.proc is not None
        marked = wait_interrupted(cluster, first["id"])
        if ended:
            (tmp_path / f"gate.{first['id']}").touch()
            wait_for("the first run's command to exit", lambda: _zombie(old))
        second = trigger(other)  # Forbid: nothing holds the task back any more
        assert second["status"] == "running", second
        wait_for("the second run's command", (pids / second["id"]).exists)
        new = int((pids / second["id"]).read_text())
        assert alive(old)  # both commands run (or, ended, wait to be heard of)

        frozen.proc.send_signal(signal.SIGCONT)
        # Its first renewal finds the run is no longer its own: SIGTERM, the command ends.
        wait_for("the lapsed run's command to end", lambda: not alive(old), timeout=20)
        frozen.wait_log(NOT_RECORDED_LOG, timeout=20)
        kept = record(cluster, first["id"])
        assert kept == marked, kept  # the other replica's record stands, as it wrote it
        assert kept is not None
        assert kept.reason == PROCESS_DIED
        assert alive(new)  # the run that took over goes on
        current = record(cluster, second["id"])
        assert current is not None
        assert current.status is RunStatus.RUNNING, current
        log = frozen.log()
        assert log.count(DISOWNED_LOG) == 1, log  # said once, not at each renewal
        assert log.count(NOT_RECORDED_LOG) == 1, log
        assert "Traceback" not in log
        assert frozen.proc.poll() is None  # it goes on as a member
    finally:
        gate.touch()  # no command outlives the test (the fixture SIGKILLs the replicas)
        if frozen.proc is not None and frozen.proc.poll() is None:
            frozen.proc.send_signal(signal.SIGCONT)
