"""Two crontasks whose Jobs go to one namespace (``--job-namespace`` defaults to the pod's, so
two installations in one namespace share it) each see the other's Jobs: the watch lists every
Job with the ``crontask.dev/run-id`` label there. A crontask took the other's Jobs for those of
a task of its own that was removed, and deleted them at its start and at every resync
("a Job crontask did not create is never touched", README *The job action*). A removed task's
Job is now deleted only when this crontask's run store has a record of its run.

Real ``crontask run`` processes, each with its own state directory (its own SQLite run store),
against the Kubernetes emulator, which runs the Jobs' containers as local processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.core.runs import RunRecord
from tests.e2e.conftest import stop_all
from tests.ha.conftest import Cluster, cluster  # noqa: F401 (the fixture)
from tests.helpers import wait_for
from tests.jobs.conftest import Crontask, condition, jobs, trigger, write_task
from tests.jobs.test_lifecycle import ended
from tests.k8s.emulator import Emulator
from tests.store.conftest import pg_admin, pg_url

__all__ = ["pg_admin", "pg_url"]  # fixtures


class Two:
    """Crontasks of their own (work folder, tasks, state directory), one emulator."""

    def __init__(self, root: Path, kubeconfig: Path) -> None:
        self.root = root
        self.kubeconfig = kubeconfig
        self.started: list[Crontask] = []

    def make(self, name: str) -> Crontask:
        workdir = self.root / name
        (workdir / "tasks").mkdir(parents=True)
        args = ["--kubeconfig", str(self.kubeconfig), "--resync", "2s"]
        instance = Crontask(workdir, workdir / "tasks", args, {"HOME": str(workdir)})
        self.started.append(instance)
        return instance


@pytest.fixture
def two(tmp_path: Path, kubeconfig: Path, request: pytest.FixtureRequest) -> Iterator[Two]:
    made = Two(tmp_path, kubeconfig)
    yield made
    stop_all(made.started, request)


def run_once(instance: Crontask, emulator: Emulator, key: str, label: str, count: int) -> None:
    trigger(instance, key)
    wait_for(f"run {count} of {key}", lambda: len(ended(instance, key)) == count)
    wait_for(
        f"{count} complete Jobs of {key}",
        lambda: [condition(j) for j in jobs(emulator, label)] == ["Complete"] * count,
    )


@pytest.mark.slow
def test_a_crontask_leaves_the_jobs_of_another_in_their_shared_namespace(
    two: Two, emulator: Emulator
) -> None:
    """B runs ``areport`` (history limit 10) twice. A, in the same Job namespace, runs its own
    ``zmine`` once, stops, loses ``zmine`` and starts again: at that start it deletes the Job
    of ``zmine``, a run of its own store, and leaves B's two. (A judges the tasks in the order
    of their keys, ``default/areport`` first: once ``zmine``'s Job is gone, B's were judged.)"""
    b = two.make("b")
    write_task(b.tasks, "areport", "echo team-b", successfulRunsHistoryLimit=10)
    b.start()
    b.wait_log("task added")
    for count in (1, 2):
        run_once(b, emulator, "default/areport", "default.areport", count)
    b.stop()  # B's clean-up keeps its two Jobs; A alone could delete them now

    a = two.make("a")
    (a.tasks / "stays.yaml").write_text(
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: stays}\n"
        "spec: {schedule: '0 0 1 1 *', command: {args: ['true']}}\n"
    )  # so that removing zmine is no empty set
    write_task(a.tasks, "zmine", "echo mine")
    a.start()
    run_once(a, emulator, "default/zmine", "default.zmine", 1)
    a.stop()
    (a.tasks / "zmine.yaml").unlink()
    a.start()
    wait_for("A deletes its removed task's Job", lambda: jobs(emulator, "default.zmine") == [])
    a.wait_log("task=default/zmine")
    kept = [condition(j) for j in jobs(emulator, "default.areport")]
    assert kept == ["Complete", "Complete"], a.log()
    assert "task=default/areport" not in a.log()


@pytest.mark.slow
@pytest.mark.postgres
def test_replicas_are_one_installation_a_removed_tasks_job_goes_whoever_ran_it(
    cluster: Cluster,  # noqa: F811 (the fixture of tests.ha.conftest)
    emulator: Emulator,
    kubeconfig: Path,
) -> None:
    """Two ``--ha`` replicas share a run store: a record of either is the installation's.
    ``x`` runs on the replica that owns it, which is then killed; ``x`` is removed, and the
    survivor deletes its Job, recorded by the dead replica."""
    (cluster.tasks / "stays.yaml").write_text(
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: stays}\n"
        "spec: {schedule: '0 0 1 1 *', command: {args: ['true']}}\n"
    )
    write_task(cluster.tasks, "x", "echo x")
    extra = ("--kubeconfig", str(kubeconfig), "--resync", "2s")
    replicas = [cluster.add(name, *extra) for name in ("r1", "r2")]
    for replica in replicas:
        replica.wait_log('msg="replicas changed" members=2 ', timeout=40)
    ran = httpx.post(f"{replicas[0].server}/api/v1/tasks/default/x/runs", timeout=10)
    ran.raise_for_status()

    def finished() -> RunRecord | None:
        done = [r for r in cluster.runs("default/x") if r.status.finished]
        return done[0] if done else None

    record = wait_for("the run of x", finished, timeout=30)
    wait_for("its Job complete", lambda: [condition(j) for j in jobs(emulator, "default.x")])
    runner = next(r for r in replicas if (record.owner or "").startswith(r.id_prefix))
    survivor = next(r for r in replicas if r is not runner)
    runner.kill()
    survivor.wait_log('msg="replicas changed" members=1 ', timeout=60)
    (cluster.tasks / "x.yaml").unlink()
    wait_for("the survivor deletes x's Job", lambda: jobs(emulator, "default.x") == [], 40)
    assert "task=default/x" in survivor.log()
