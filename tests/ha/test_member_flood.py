"""Two real ``crontask run --ha`` replicas on PostgreSQL while another writer of the database
keeps 1 100 member rows fresh, each with a view (more than a renewal reads): a replica killed
meanwhile hands its tasks over to the one left. Before, a cut member list judged no one, and a
dead replica's tasks ran nowhere until the rows were gone."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from reconciler.core.runs import RunStatus
from tests.ha.conftest import Cluster
from tests.ha.test_replicas import members, write_tasks
from tests.helpers import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

FAST = ("--renew-interval", "0.5s", "--renew-deadline", "2s", "--lease-duration", "3s")
JUNK = 1100


class Flood:
    """Rows another writer of the run store's database keeps fresh, in a thread."""

    def __init__(self, db: str) -> None:
        self.engine = sa.create_engine(db)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._refresh, daemon=True)

    def __enter__(self) -> Flood:
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "insert into members (id, address, since, renewed, lease_seconds, digest, "
                    "owned, draining) select 'junk-' || g, null, now(), now(), 3, 'x', 0, false "
                    "from generate_series(1, :count) g"
                ),
                {"count": JUNK},
            )
        self.thread.start()
        return self

    def _refresh(self) -> None:
        while not self.stop.wait(0.3):
            with self.engine.begin() as conn:
                conn.execute(sa.text("update members set renewed = now() where id like 'junk-%'"))

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        with self.engine.begin() as conn:
            conn.execute(sa.text("delete from members where id like 'junk-%'"))
        self.engine.dispose()


@pytest.mark.slow  # about 20 s: two replicas, a flood of member rows, one replica killed
def test_a_replica_killed_under_a_flood_of_member_rows_hands_its_tasks_over(
    cluster: Cluster, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    write_tasks(cluster, out, count=6)
    a, b = cluster.add("a", *FAST), cluster.add("b", *FAST)
    for replica in (a, b):
        members(replica, 2)
    with Flood(cluster.db):
        for replica in (a, b):
            replica.wait_log("more members are live than a renewal reads")
        a.offset = a.log_path.stat().st_size  # what a says from now on
        b.kill()
        killed = datetime.now(UTC)
        members(a, 1)  # b was known: missing from the cut list, it is gone

        def a_runs_every_task() -> bool:
            ran = {
                r.task
                for r in cluster.runs()
                if r.scheduled_at > killed
                and r.status is RunStatus.SUCCEEDED
                and r.owner
                and r.owner.startswith(a.id_prefix)
            }
            return len(ran) == 6

        wait_for("b's tasks to run on a", a_runs_every_task, 20)
