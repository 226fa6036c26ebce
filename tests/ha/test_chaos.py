"""Chaos: 200 tasks firing every second on three ``crontask run --ha`` replicas for at least
90 s, while a random replica is killed (``kill -9``) and restarted every 20 s and one is stopped
with SIGTERM. Every slot ran at most once (from the run store and from the file each command
appends to); every slot outside the failover windows ran; each window is within its bound
(lease + renew interval after a kill, 3 s after SIGTERM).

Slow (about two minutes): ``make test-slow`` runs it, and CI runs that too.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus
from tests.ha.conftest import Cluster, Replica

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

TASKS = 200
DURATION = 100.0
# A failure every 20 s from the start: kill -9, kill -9, SIGTERM, kill -9; each replica is
# restarted at once, as a Deployment would.
FAILURES = ((20.0, "kill"), (40.0, "kill"), (60.0, "term"), (80.0, "kill"))
KILL_BOUND = 15.0 + 2.0 + 3.0  # lease + renew interval, + slack for a loaded machine
TERM_BOUND = 3.0 + 2.0


@dataclass
class Window:
    kind: str  # "kill" | "term"
    at: datetime
    victim: str  # the owner-id prefix of the replica that went away

    @property
    def bound(self) -> float:
        return KILL_BOUND if self.kind == "kill" else TERM_BOUND

    def covers(self, slot: datetime) -> bool:
        return self.at - timedelta(seconds=1) <= slot <= self.at + timedelta(seconds=self.bound)


def write_tasks(cluster: Cluster, out: Path) -> None:
    out.mkdir()
    docs = []
    for i in range(TASKS):
        name = f"c{i:03d}"
        docs.append(
            "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"
            f"metadata: {{name: {name}}}\n"
            'spec:\n  schedule: "* * * * * *"\n'
            # Allow: a slot's run never waits for the previous one, so what this test sees
            # is failover, not a slow machine's ConcurrencyForbid skips.
            "  concurrencyPolicy: Allow\n"
            f"  command: {{args: [sh, -c, 'echo $CRONTASK_RUN_ID >> {out}/{name}.txt']}}\n"
        )
    (cluster.tasks / "chaos.yaml").write_text("---\n".join(docs))


def test_chaos_every_slot_at_most_once_and_every_slot_outside_failovers(
    cluster: Cluster, tmp_path: Path
) -> None:
    rng = random.Random(2026)  # noqa: S311 - a reproducible sequence of failures
    out = tmp_path / "out"
    write_tasks(cluster, out)
    live = {name: cluster.add(name) for name in ("a", "b", "c")}
    for replica in live.values():
        replica.wait_log('msg="replicas changed" members=3 ', timeout=60)
    start = datetime.now(UTC)
    began = time.monotonic()
    windows: list[Window] = []
    for offset, kind in FAILURES:
        time.sleep(max(0.0, began + offset - time.monotonic()))
        name = rng.choice(sorted(live))
        victim = live[name]
        prefix = victim.id_prefix
        if kind == "term":
            assert victim.proc is not None
            victim.proc.send_signal(signal.SIGTERM)
            windows.append(Window("term", datetime.now(UTC), prefix))
            assert victim.proc.wait(timeout=60) == 0
        else:
            victim.kill()
            windows.append(Window("kill", datetime.now(UTC), prefix))
        # Restarted at once, as a Deployment would: a new process, a new instance id.
        live[name] = _restart(cluster, victim)
    time.sleep(max(0.0, began + DURATION - time.monotonic()))
    end = datetime.now(UTC) - timedelta(seconds=3)
    for replica in live.values():
        assert replica.stop() == 0

    records = [r for r in cluster.runs() if start <= r.scheduled_at <= end]
    ran = {r.id: r for r in records if r.status is not RunStatus.SKIPPED}
    # At most once: the store refuses a second claim; the commands' own files agree.
    lines = Counter(
        line for path in out.glob("*.txt") for line in path.read_text().splitlines() if line
    )
    assert max(lines.values()) == 1, lines.most_common(3)

    # Every slot outside a failover window ran (run, or at least started and recorded).
    first = start.replace(microsecond=0) + timedelta(seconds=2)
    missing: list[str] = []
    slot = first
    while slot <= end:
        if not any(w.covers(slot) for w in windows):
            for i in range(TASKS):
                run = f"default.c{i:03d}.{slot:%Y%m%dT%H%M%SZ}"
                if run not in ran and run not in lines:
                    missing.append(run)
        slot += timedelta(seconds=1)
    by_second = sorted(Counter(run.rsplit(".", 1)[1] for run in missing).items())
    failures = [(w.kind, w.at.isoformat()) for w in windows]
    assert not missing, (
        f"{len(missing)} slots outside failover windows did not run, by second: "
        f"{by_second[:20]}; failures: {failures}"
    )

    # Each window within its bound: every task the victim held runs again elsewhere in time.
    for window in windows:
        held = {
            r.task
            for r in records
            if r.owner
            and r.owner.startswith(window.victim)
            and r.scheduled_at <= window.at
            and r.scheduled_at >= window.at - timedelta(seconds=5)
        }
        for task in held:
            after = [
                r.scheduled_at
                for r in records
                if r.task == task
                and r.scheduled_at > window.at
                and r.owner
                and not r.owner.startswith(window.victim)
            ]
            assert after, f"{task} never ran again after the {window.kind} at {window.at}"
            gap = (min(after) - window.at).total_seconds()
            assert gap <= window.bound, (task, window.kind, gap)


def _restart(cluster: Cluster, old: Replica) -> Replica:
    replica = Replica(old.name, cluster.workdir, cluster.tasks, cluster.db, old.extra)
    cluster.replicas.append(replica)
    return replica.start()
