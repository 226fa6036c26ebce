"""Two independent ``crontask run --ha --kubernetes`` deployments (own tasks, own run store),
whose Leases share a namespace (both in the pod's, the default): each is a membership of its
own, so neither hands the other's replica tasks it never runs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from reconciler.membership.leases import group_of
from tests.ha.conftest import Cluster
from tests.helpers import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.usefixtures("real_crd")]

TASKS = 20


@pytest.fixture
def other(cluster: Cluster, pg_admin: Any, tmp_path: Path) -> Iterator[Cluster]:
    """A second deployment: its run store is another schema of the same database."""
    schema = f"crontask_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(cluster.db).update_query_dict({"options": f"-csearch_path={schema}"})
    (tmp_path / "other").mkdir()
    made = Cluster(tmp_path / "other", url.render_as_string(hide_password=False))
    yield made
    for replica in made.replicas:
        if replica.proc is not None and replica.proc.poll() is None:
            replica.proc.kill()
            replica.proc.wait(timeout=10)
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


def write_tasks(folder: Path, team: str) -> None:
    for i in range(TASKS):
        (folder / f"{team}{i}.yaml").write_text(
            "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"
            f"metadata: {{name: {team}{i}, namespace: {team}}}\n"
            "spec: {schedule: '* * * * * *', command: {args: ['true']}}\n"
        )


@pytest.mark.slow  # 8 s: make test keeps to its budget; make test-slow runs it
def test_two_deployments_with_leases_in_one_namespace_each_run_all_their_tasks(
    cluster: Cluster, other: Cluster, kubeconfig: Path
) -> None:
    assert group_of(cluster.db) != group_of(other.db)
    write_tasks(cluster.tasks, "teamx")
    write_tasks(other.tasks, "teamy")
    flags = ("--kubeconfig", str(kubeconfig), "--kubernetes")
    x = cluster.add("x", *flags, "--namespace", "teamx")
    y = other.add("y", *flags, "--namespace", "teamy")
    for replica in (x, y):
        replica.wait_log('msg="replicas changed" members=1 ', timeout=40)
    since = datetime.now(UTC)

    def ran(deployment: Cluster) -> set[str]:
        return {r.task for r in deployment.runs() if r.scheduled_at >= since}

    wait_for("every task of both deployments ran", lambda: len(ran(cluster) | ran(other)) == 40, 30)
    for replica in (x, y):
        members = httpx.get(f"{replica.server}/api/v1/members", timeout=5).json()["items"]
        assert [m["id"].startswith(replica.id_prefix) for m in members] == [True]
