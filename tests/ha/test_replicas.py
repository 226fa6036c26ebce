"""Three real ``crontask run --ha`` processes on PostgreSQL: tasks spread over the replicas, a
slot runs once, and the loss of a replica (kill -9, SIGTERM) is covered within its bound."""

from __future__ import annotations

import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from reconciler.core.assignment import owner
from reconciler.core.runs import RunStatus, Trigger
from tests.ha.conftest import Cluster, Replica
from tests.helpers import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

TASKS = 12


def write_tasks(cluster: Cluster, out: Path, count: int = TASKS, **extra: str) -> None:
    out.mkdir(exist_ok=True)
    for i in range(count):
        name = f"tick-{i:02d}"
        lines = [
            "apiVersion: crontask.dev/v1alpha1",
            "kind: CronTask",
            f"metadata: {{name: {name}}}",
            "spec:",
            '  schedule: "* * * * * *"',
            *[f"  {k}: {v}" for k, v in extra.items()],
            "  command:",
            f"    args: [sh, -c, 'echo $CRONTASK_RUN_ID >> {out}/{name}.txt']",
        ]
        (cluster.tasks / f"{name}.yaml").write_text("\n".join(lines) + "\n")


def executed(out: Path) -> Counter[str]:
    return Counter(
        line for path in out.glob("*.txt") for line in path.read_text().splitlines() if line
    )


def owners_since(cluster: Cluster, since: datetime) -> dict[str, set[str]]:
    """Who ran each task's slots after ``since`` (task -> owner ids)."""
    found: dict[str, set[str]] = {}
    for record in cluster.runs():
        if record.scheduled_at >= since and record.owner and record.status is RunStatus.SUCCEEDED:
            found.setdefault(record.task, set()).add(record.owner)
    return found


def members(replica: Replica, count: int) -> None:
    replica.wait_log(f'msg="replicas changed" members={count} ', timeout=40)


@pytest.mark.slow  # half a minute of three replicas running per-second tasks
def test_tasks_spread_over_three_replicas_and_each_slot_runs_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    write_tasks(cluster, out)
    a = cluster.add("a")
    b = cluster.add("b")
    c = cluster.add("c")
    for replica in (a, b, c):
        members(replica, 3)
    settled = datetime.now(UTC) + timedelta(seconds=3)
    wait_for(
        "runs after the replicas settled",
        lambda: datetime.now(UTC) > settled + timedelta(seconds=4),
        15,
    )
    owners = owners_since(cluster, settled)
    assert len(owners) == TASKS
    assert all(len(o) == 1 for o in owners.values()), owners  # one owner per task, steady
    # Each task runs where rendezvous hashing over the three members puts it. (How many a
    # replica gets depends on the ids it drew at start: with 12 tasks one may get none.)
    ids = [m["id"] for m in httpx.get(f"{a.server}/api/v1/members").json()["items"]]
    assert len(ids) == 3
    assert {task: next(iter(o)) for task, o in owners.items()} == {
        task: owner(task, ids) for task in owners
    }
    counts = executed(out)
    assert counts, "nothing ran"
    assert max(counts.values()) == 1, counts.most_common(3)


@pytest.mark.slow  # half a minute: a replica killed, and its lease left to run out
def test_kill_9_moves_the_tasks_within_the_lease_and_marks_the_runs_interrupted(
    cluster: Cluster, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    write_tasks(cluster, out)
    (cluster.tasks / "slow.yaml").write_text(
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: slow}\n"
        'spec:\n  schedule: "* * * * * *"\n  command: {args: [sleep, "60"]}\n'
    )
    a, b, c = cluster.add("a"), cluster.add("b"), cluster.add("c")
    for replica in (a, b, c):
        members(replica, 3)
    settled = datetime.now(UTC) + timedelta(seconds=2)
    time.sleep(4)
    victim = next(
        r for r in (a, b, c) if any(o.startswith(r.id_prefix) for o in _owners(cluster, settled))
    )
    lost = {t for t, o in owners_since(cluster, settled).items() if _by(o, victim)}
    slow_owner = _slow_owner(cluster)
    victim.kill()
    killed = datetime.now(UTC)
    survivors = [r for r in (a, b, c) if r is not victim]
    for replica in survivors:
        members(replica, 2)

    # Every task the victim ran is run again by a survivor, within lease + renew interval.
    def covered() -> bool:
        after = owners_since(cluster, killed)
        return all(t in after and not _by(after[t], victim) for t in lost)

    wait_for("the victim's tasks to run elsewhere", covered, 40)
    first = min(
        r.scheduled_at
        for r in cluster.runs()
        if r.task in lost and r.scheduled_at > killed and r.status is RunStatus.SUCCEEDED
    )
    assert (first - killed).total_seconds() <= 20.0 + 2.0  # lease 15 s + renew 2 s, + a slot
    if slow_owner is not None and slow_owner.startswith(victim.id_prefix):
        interrupted = [
            r
            for r in cluster.runs("default/slow")
            if r.status is RunStatus.INTERRUPTED
            and r.owner
            and r.owner.startswith(victim.id_prefix)
        ]
        assert interrupted, "the victim's running run was not marked interrupted"
    caught_up = [r for r in cluster.runs() if r.task in lost and r.trigger is Trigger.CATCHUP]
    assert caught_up, "the new owner did not catch up the latest missed slot"
    assert max(executed(out).values()) == 1


@pytest.mark.slow  # 20 s: three replicas, one stopped and its tasks timed elsewhere
def test_sigterm_hands_over_within_three_seconds(cluster: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_tasks(cluster, out)
    a, b = cluster.add("a"), cluster.add("b")
    for replica in (a, b):
        members(replica, 2)
    time.sleep(3)
    leaving_tasks = {
        t
        for t, o in owners_since(cluster, datetime.now(UTC) - timedelta(seconds=2)).items()
        if _by(o, a)
    }
    assert leaving_tasks
    assert a.proc is not None
    a.proc.send_signal(signal.SIGTERM)
    stopped = datetime.now(UTC)

    def taken() -> bool:
        # Each of a's tasks has run elsewhere since. (A slot due in the instant between the
        # signal and a's hand-over still runs on a, which owned it then: exactly once, below.)
        after = owners_since(cluster, stopped)
        return all(
            any(not o.startswith(a.id_prefix) for o in after.get(t, ())) for t in leaving_tasks
        )

    wait_for("a's tasks to run on b", taken, 20)
    first = min(
        r.scheduled_at
        for r in cluster.runs()
        if r.task in leaving_tasks
        and r.scheduled_at > stopped
        and r.owner
        and not r.owner.startswith(a.id_prefix)
    )
    assert (first - stopped).total_seconds() <= 3.0 + 1.0  # handover, and the next slot
    assert a.proc.wait(timeout=30) == 0
    assert max(executed(out).values()) == 1


def _by(owners: set[str], replica: Replica) -> bool:
    return any(o.startswith(replica.id_prefix) for o in owners)


def _owners(cluster: Cluster, since: datetime) -> set[str]:
    return {o for found in owners_since(cluster, since).values() for o in found}


def _slow_owner(cluster: Cluster) -> str | None:
    running = [r for r in cluster.runs("default/slow") if r.status is RunStatus.RUNNING]
    return running[0].owner if running else None
