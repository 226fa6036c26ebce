"""A ``Replace`` run asked of one replica while the run it replaces goes on another, frozen
(SIGSTOP) past its lease: once resumed, the frozen replica stops its run, as it was asked to
through the store.

The replica asked wrote the stop request on the run's row, then, the lease out, marked the run
interrupted and started its own. The frozen one read only the requests of rows still
``running``: resumed, it never saw it, its command ran beside the new one until it ended by
itself, and its record was then written ``succeeded`` over the interrupted one.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from reconciler.core.runs import RunRecord, RunStatus
from reconciler.store import open_store
from tests.ha.conftest import Cluster
from tests.ha.frozen_runs import alive, frozen_and_other, pid_task, record, run_then_freeze, trigger
from tests.helpers import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]


def finished(cluster: Cluster, run_id: str) -> RunRecord | None:
    found = record(cluster, run_id)
    return found if found is not None and found.status.finished else None


@pytest.mark.slow  # about half a minute: a replica frozen past its lease
def test_a_run_replaced_while_its_replica_was_frozen_stops_once_resumed(
    cluster: Cluster, tmp_path: Path
) -> None:
    pids, gate = pid_task(cluster, tmp_path, "Replace")
    frozen, other = frozen_and_other(cluster)
    store = open_store(cluster.db)
    try:
        first, old = run_then_freeze(frozen, pids)
        assert frozen.proc is not None

        second = trigger(other)
        assert second["status"] == "pending", second  # it waits for the frozen one's run
        wait_for("the second run's command", (pids / second["id"]).exists, timeout=60)
        new = int((pids / second["id"]).read_text())
        # The replica asked marked the frozen one's run interrupted; the request stays on it.
        marked = record(cluster, first["id"])
        assert marked is not None
        assert marked.status is RunStatus.INTERRUPTED, marked
        assert marked.owner is not None
        assert store.stop_requests(marked.owner, [(first["id"], 1)]) == [
            (first["id"], 1, "Replaced")
        ]
        assert alive(old)  # both commands run

        frozen.proc.send_signal(signal.SIGCONT)
        # Its first renewal reads the request: SIGTERM, the command ends at once.
        wait_for("the replaced run's command to end", lambda: not alive(old), timeout=20)
        ended = wait_for(
            "the replaced run's end record", lambda: finished(cluster, first["id"]), timeout=20
        )
        assert ended.status is RunStatus.FAILED, ended  # not succeeded, nor left interrupted
        assert ended.reason == "Replaced", ended
        assert alive(new)  # the run that replaced it goes on
        current = record(cluster, second["id"])
        assert current is not None
        assert current.status is RunStatus.RUNNING, current
        assert "Traceback" not in frozen.log()
    finally:
        store.close()
        gate.touch()  # no command outlives the test (the fixture SIGKILLs the replicas)
        if frozen.proc is not None and frozen.proc.poll() is None:
            frozen.proc.send_signal(signal.SIGCONT)
