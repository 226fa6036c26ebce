"""Start-up recovery: the runs a dead crontask left ``running``, and the commands they left
running on this host. Real processes, the in-memory run store."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.controller.instance import instance_id, recover
from reconciler.core.runs import PROCESS_DIED, RunRecord, RunStatus, Trigger, run_id
from reconciler.runner import leftovers
from reconciler.store.memory import MemoryRunStore
from tests.helpers import wait_for

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
        proc.wait()


def dead_instance() -> str:
    """An instance of this host whose process is gone."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    host = instance_id().split(":")[0]
    return f"{host}:{gone.pid}:0badc0de"


def record(task: str, owner: str, status: RunStatus, **fields: object) -> RunRecord:
    return RunRecord(
        run_id(task, T0),
        task,
        T0,
        Trigger.SCHEDULE,
        status,
        started_at=T0,
        owner=owner,
        **fields,  # type: ignore[arg-type]
    )


def test_a_dead_crontasks_commands_are_stopped_and_no_others(
    procs: list[subprocess.Popen[bytes]],
) -> None:
    me, dead, live = instance_id(), dead_instance(), instance_id()
    later = T0 + timedelta(minutes=1)
    store = MemoryRunStore()
    cases = {
        # Recorded running: its crontask died during it.
        "ops/running": (dead, record("ops/running", dead, RunStatus.RUNNING)),
        # Marked interrupted by another replica, which cannot reach this host.
        "ops/taken": (
            dead,
            record(
                "ops/taken",
                dead,
                RunStatus.INTERRUPTED,
                reason=PROCESS_DIED,
                finished_at=later,
            ),
        ),
        # Ended: what it left (a daemon on purpose) stays, as it would with crontask alive.
        "ops/ended": (
            dead,
            record("ops/ended", dead, RunStatus.SUCCEEDED, exit_code=0, finished_at=later),
        ),
        # Stopped at shutdown: as above, its crontask did what it does at a stop.
        "ops/shutdown": (
            dead,
            record(
                "ops/shutdown", dead, RunStatus.INTERRUPTED, reason="Shutdown", finished_at=later
            ),
        ),
        # Another crontask, alive (its record in its own store: the same id in this one).
        "ops/alive": (live, record("ops/alive", dead, RunStatus.RUNNING)),
        # The record says another instance ran it.
        "ops/other": (dead, record("ops/other", "elsewhere:1:abcd", RunStatus.RUNNING)),
    }
    started = {}
    for task, (instance, rec) in cases.items():
        store.claim(rec)
        env = {
            "PATH": os.environ["PATH"],
            "CRONTASK_RUN_ID": rec.id,
            "CRONTASK_ATTEMPT": "1",
            "CRONTASK_INSTANCE": instance,
        }
        proc = subprocess.Popen(["sleep", "30"], env=env, start_new_session=True)
        procs.append(proc)
        started[task] = proc
    # These runs' own (other processes of the host may carry runs of an "ops" namespace).
    ours = {rec.id for _, rec in cases.values()}
    wait_for("the commands to start", lambda: ours <= {r.run_id for r in leftovers.scan()} or None)

    recover(store, me, later, grace=5.0)

    for task in ("ops/running", "ops/taken"):
        assert started[task].wait(timeout=5) == -15
    for task in ("ops/ended", "ops/shutdown", "ops/alive", "ops/other"):
        assert started[task].poll() is None
    # And the run left running is marked interrupted, after its command was stopped.
    marked = store.get(run_id("ops/running", T0))
    assert marked is not None
    assert marked.status is RunStatus.INTERRUPTED


def test_what_no_crontask_could_be_is_no_dead_one(procs: list[subprocess.Popen[bytes]]) -> None:
    """CRONTASK_INSTANCE is read from other processes' environments, which anyone may set (a
    test's, a hostile command's): a value that names no pid is nobody's, and start-up goes on."""
    me = instance_id()
    host = me.split(":")[0]
    store = MemoryRunStore()
    odd = [f"{host}:x:1", f"{host}:99999999999999999999:1", f"{host}::1", f"{host}:1", "::", ""]
    for n, instance in enumerate(odd):
        env = {"PATH": os.environ["PATH"], "CRONTASK_RUN_ID": f"ops.odd.{n}"}
        env |= {"CRONTASK_ATTEMPT": "1", "CRONTASK_INSTANCE": instance}
        procs.append(subprocess.Popen(["sleep", "30"], env=env, start_new_session=True))
    # An attempt that is no number (a digit str.isdigit takes and int() does not): no run.
    env = {"PATH": os.environ["PATH"], "CRONTASK_RUN_ID": "ops.odd.x", "CRONTASK_ATTEMPT": "²"}
    env["CRONTASK_INSTANCE"] = f"{host}:1:x"
    procs.append(subprocess.Popen(["sleep", "30"], env=env, start_new_session=True))
    wait_for(
        "the commands to start",
        lambda: (
            len([r for r in leftovers.scan() if r.run_id.startswith("ops.odd.")]) == len(odd)
            or None
        ),
    )
    assert len(recover(store, me, T0, grace=5.0)) == 0
    assert all(proc.poll() is None for proc in procs)
