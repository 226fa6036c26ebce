"""A real ``crontask run --ha`` replica stopped (SIGSTOP) inside its exclusive claim's
transaction: the others take its tasks all the same, and it works on once resumed.

Frozen so, it held the task's advisory lock, and the server never ended its session (the kernel
answers a stopped process's keepalives): every later claim of the task on the other replica
waited behind it, and nothing of the task ran anywhere until it resumed. The store's sessions
now end a transaction left idle (``sql_schema.PG_IDLE_IN_TRANSACTION_TIMEOUT``).

To stop it at that very point, the replica imports a ``sitecustomize`` (through PYTHONPATH)
that wraps ``sql_exclusive.claim``: the first claim after the test arms it sends SIGSTOP to its
own process once the claim's statements are sent, before the COMMIT.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus
from tests.ha.conftest import Cluster, Replica
from tests.ha.test_replicas import members, write_tasks
from tests.helpers import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

_HOOK = """
import os, signal
from pathlib import Path

_ARM = os.environ.get("CRONTASK_TEST_FREEZE_ARM")
if _ARM:
    from reconciler.store import sql_exclusive

    _real = sql_exclusive.claim

    def claim(conn, records, claim_stmt, sqlite):
        answers = _real(conn, records, claim_stmt, sqlite)
        try:
            os.unlink(_ARM)  # once, whichever store thread comes first
        except FileNotFoundError:
            return answers
        told = Path(_ARM + ".task")
        told.with_suffix(".tmp").write_text(records[0].task)
        told.with_suffix(".tmp").rename(told)
        os.kill(os.getpid(), signal.SIGSTOP)
        return answers

    sql_exclusive.claim = claim
"""
# Short leases, so that the other replica takes the frozen one's tasks soon.
_TIMING = ("--renew-interval", "1s", "--renew-deadline", "3s", "--lease-duration", "5s")


def _stopped(replica: Replica) -> bool:
    assert replica.proc is not None
    state = Path(f"/proc/{replica.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state == "T"


@pytest.mark.slow  # half a minute: a replica frozen past its lease
def test_a_replica_frozen_inside_its_claim_does_not_hold_the_others(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    # Enough tasks that each replica owns some, whatever ids they drew (2 of 2^16 draws fail).
    write_tasks(cluster, out, count=16, concurrencyPolicy="Forbid")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_HOOK)
    arm = tmp_path / "freeze-arm"
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", f"{hook}{os.pathsep}{path}" if path else str(hook))
    monkeypatch.setenv("CRONTASK_TEST_FREEZE_ARM", str(arm))
    frozen = cluster.add("frozen", *_TIMING)
    monkeypatch.delenv("CRONTASK_TEST_FREEZE_ARM")
    healthy = cluster.add("healthy", *_TIMING)
    members(frozen, 2)
    members(healthy, 2)

    arm.touch()
    told = Path(f"{arm}.task")
    wait_for("the replica to freeze inside its claim", lambda: told.exists() and _stopped(frozen))
    task = told.read_text()
    frozen_at = [r.id for r in cluster.runs(task)]

    # The healthy replica takes the task over and runs it, the frozen one still stopped.
    def run_by_healthy() -> bool:
        return any(
            r.owner is not None
            and r.owner.startswith(healthy.id_prefix)
            and r.status is RunStatus.SUCCEEDED
            and r.id not in frozen_at
            for r in cluster.runs(task)
        )

    wait_for(f"a run of {task} by the healthy replica", run_by_healthy, timeout=60)
    assert _stopped(frozen)

    # Resumed, the frozen replica finds its transaction gone, an outage as any: it renews,
    # and runs its tasks again.
    assert frozen.proc is not None
    frozen.proc.send_signal(signal.SIGCONT)

    def run_by_frozen_again() -> bool:
        return any(
            r.owner is not None
            and r.owner.startswith(frozen.id_prefix)
            and r.status is RunStatus.SUCCEEDED
            and r.id not in frozen_at
            for r in cluster.runs()
        )

    wait_for("a run by the resumed replica", run_by_frozen_again, timeout=60)
    assert "Traceback" not in frozen.log()
