"""The Jobs clean-up and the sources' empty-set guard: a pass that reads every source empty
holds the removals back, and a removed task's finished Jobs are not deleted while it holds.

The clean-up took "held" when it started, then waited for the run store (``running``), then
read the tasks declared. A pass whose sources all read empty that landed during the wait paired
"nothing declared" with the "not held" of the pass before: every task counted as removed and
every finished Job of theirs in the run store was deleted, which is what the guard is there to
prevent (a store that is slow to answer was enough). Now the clean-up reads both after the wait,
as one pair, from the last pass applied.

In process: the real Job watch against the Kubernetes emulator (over HTTP), a real folder source
read by the real reconciler, and the Jobs supervisor; the run store's ``running`` is held on an
event while the pass lands."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.jobs import JobSupervisor, JobSupport
from reconciler.controller.reconcile import PassResult, Reconciler
from reconciler.core.jobs import finished, job_manifest, job_name
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.runner.base import Actions
from reconciler.runner.job import JobRunner
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.sources.api import ApiSource, ApiTaskFiles
from reconciler.sources.base import Source
from reconciler.sources.files import DirectorySource
from reconciler.sources.kubernetes_jobs import JobWatch
from reconciler.store import MemoryRunStore
from tests.helpers import wait_for
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import serve

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POD = {"containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}


@pytest.fixture
def quiet_emulator() -> Iterator[Emulator]:
    yield from serve()  # runs no Job: the test writes their status


class HeldRunning(MemoryRunStore):
    """A run store whose ``running`` waits for ``release`` while ``hold`` is set (in the
    recorder's thread); ``entered`` says that a call is waiting there."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.entered = threading.Event()
        self.release = threading.Event()

    def running(self, task: str | None = None) -> list[RunRecord]:
        if self.hold:
            self.entered.set()
            assert self.release.wait(30), "the test never released running()"
        return super().running(task)


def task_text(name: str, namespace: str = "default", **spec: Any) -> str:
    job = {"namespace": namespace, "spec": {"backoffLimit": 0, "template": {"spec": POD}}}
    document = {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": name},
        "spec": {"schedule": "0 0 1 1 *", **spec, "job": job},
    }
    return yaml.safe_dump(document)


def write_task(folder: Path, name: str, namespace: str = "default", **spec: Any) -> None:
    (folder / f"{name}.yaml").write_text(task_text(name, namespace, **spec))


class Housekeeping:
    """One crontask's Jobs housekeeping, in process: a folder of tasks, the reconciler that
    reads it, the Job watch of ``namespaces`` and the supervisor (``clean`` called by the
    test, as after a pass or a run's end)."""

    def __init__(self, emulator: Emulator, tmp_path: Path, namespaces: list[str]) -> None:
        self.emulator = emulator
        self.tasks = tmp_path / "tasks"
        self.tasks.mkdir()
        for namespace in namespaces:
            if namespace != "default":
                body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
                emulator.create(body)
        kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig")
        self.api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        self.batch: Any = client.BatchV1Api(self.api)
        self.watch = JobWatch(self.api, namespaces)
        self.runner = JobRunner(self.watch, namespace="default")
        self.store = HeldRunning()
        self.dispatcher = Dispatcher(
            self.store, owner="h:1:x", clock=lambda: T0, actions=Actions([self.runner])
        )
        self.restart()

    def restart(self, sources: list[Source] | None = None, *, allow_empty: bool = False) -> None:
        """A new reconciler (of the folder, or of ``sources``) and supervisor over the same run
        store and Jobs, as the next crontask has at its start: its scheduler holds nothing,
        and nothing is declared until its first pass."""
        scheduler = MemoryScheduler(lambda key, at: None, T0)
        self.reconciler = Reconciler(
            sources or [DirectorySource([self.tasks])],
            scheduler,
            self.dispatcher,
            allow_empty=allow_empty,
        )
        self.supervisor = JobSupervisor(
            JobSupport(self.watch, self.runner),
            store=self.store,
            dispatcher=self.dispatcher,
            reconciler=self.reconciler,
        )

    async def start(self) -> None:
        assert await asyncio.to_thread(self.watch.start, asyncio.get_running_loop(), 10)

    async def stop(self) -> None:
        await self.dispatcher.shutdown(0)
        await asyncio.to_thread(self.watch.stop)
        self.api.close()

    async def run_pass(self) -> PassResult:
        result = await self.reconciler.run_pass(None)
        assert result.ok, result.error
        return result

    async def finished_jobs(self, key: str, count: int) -> list[str]:
        """``count`` runs of ``key`` (declared now) that ended, each recorded in the run store
        and with its Job, finished, in the cluster; the oldest first. Their names."""
        definition = self.reconciler.desired.tasks[key]
        assert definition.task.spec.job is not None
        namespace = definition.task.spec.job.namespace or "default"
        names = []
        for n in range(count):
            at = T0 - timedelta(hours=count - n)
            run = RunRecord(
                id=run_id(key, at),
                task=key,
                scheduled_at=at,
                trigger=Trigger.SCHEDULE,
                status=RunStatus.RUNNING,
                started_at=at,
                owner="h:1:x",
            )
            self.store.claim(run)
            self.store.complete(run.finish(RunStatus.SUCCEEDED, finished_at=at, exit_code=0))
            name = job_name(key, at, 1, qualified=namespace != key.split("/")[0])
            body = job_manifest(definition, run, namespace=namespace, name=name, env={})
            await asyncio.to_thread(self.batch.create_namespaced_job, namespace, body)
            status = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
            await asyncio.to_thread(self.batch.patch_namespaced_job_status, name, namespace, status)
            names.append(name)
        await self.until(f"{count} finished Jobs of {key}", lambda: self.done(key) == count)
        return names

    def done(self, key: str) -> int:
        return sum(1 for job in self.watch.jobs_of(key) if finished(job) is not None)

    def names(self, namespace: str) -> list[str]:
        found = [j["metadata"] for j in self.emulator.objects("jobs")]
        return sorted(meta["name"] for meta in found if meta["namespace"] == namespace)

    def deletes(self, namespace: str) -> int:
        prefix = f"/apis/batch/v1/namespaces/{namespace}/jobs/"
        sent = self.emulator.requests
        return sum(1 for verb, path in sent if verb == "DELETE" and path.startswith(prefix))

    async def until(self, what: str, condition: Callable[[], object]) -> None:
        await asyncio.to_thread(wait_for, what, condition, 10)


def play(
    emulator: Emulator,
    tmp_path: Path,
    namespaces: list[str],
    body: Callable[[Housekeeping], Awaitable[None]],
) -> None:
    async def main() -> None:
        house = Housekeeping(emulator, tmp_path, namespaces)
        await house.start()
        try:
            await body(house)
        finally:
            await house.stop()

    asyncio.run(main())


def test_a_pass_that_holds_removals_during_the_clean_ups_wait_keeps_every_job(
    quiet_emulator: Emulator, tmp_path: Path
) -> None:
    async def body(house: Housekeeping) -> None:
        write_task(house.tasks, "a1", successfulRunsHistoryLimit=10)
        await house.run_pass()
        names = await house.finished_jobs("default/a1", 3)

        house.store.hold = True  # the clean-up after a run's end waits for the run store...
        cleaning = asyncio.ensure_future(house.supervisor.clean({"default/a1"}))
        assert await asyncio.to_thread(house.store.entered.wait, 10)
        (house.tasks / "a1.yaml").unlink()  # ...while a pass reads the folder empty
        held = await house.run_pass()
        assert held.plan.held_removals == ("default/a1",)
        house.store.release.set()
        assert await asyncio.wait_for(cleaning, 10) == 0
        assert house.names("default") == sorted(names)
        assert house.deletes("default") == 0

        # The same clean-up once another task is declared: the hold is over, a1 is removed,
        # and its finished Jobs go (what the guard held back above, not something else).
        house.store.hold = False
        write_task(house.tasks, "b1")
        removed = await house.run_pass()
        assert removed.plan.summary() == "1 to add, 0 to change, 1 to remove, 0 unchanged"
        assert await house.supervisor.clean({"default/a1"}) == 3
        assert house.names("default") == []

    play(quiet_emulator, tmp_path, ["default"], body)


def test_a_restart_whose_sources_read_empty_deletes_no_job_of_a_removed_task(
    quiet_emulator: Emulator, tmp_path: Path
) -> None:
    """crontask stops, its folder reads empty (a failed mount, an empty checkout) and it starts
    again. Its scheduler holds nothing, so its first pass has no removal to hold back: that
    pass deleted every finished Job the run store records. Nothing of a removed task goes
    while no task is declared: not before the first pass, not after it; once a task is
    declared again, the removed one's Jobs go."""

    async def body(house: Housekeeping) -> None:
        write_task(house.tasks, "a1", successfulRunsHistoryLimit=10)
        await house.run_pass()
        names = await house.finished_jobs("default/a1", 3)
        (house.tasks / "a1.yaml").unlink()
        house.restart()
        assert await house.supervisor.clean(None) == 0  # before the first pass
        first = await house.run_pass()
        assert (first.desired.tasks, first.plan.held_removals) == ({}, ())
        assert await house.supervisor.clean(None) == 0
        assert await house.supervisor.clean({"default/a1"}) == 0
        assert house.names("default") == sorted(names)
        assert house.deletes("default") == 0

        write_task(house.tasks, "b1")
        await house.run_pass()
        assert await house.supervisor.clean(None) == 3
        assert house.names("default") == []

    play(quiet_emulator, tmp_path, ["default"], body)


def test_with_allow_empty_a_restart_whose_sources_read_empty_deletes_the_removed_tasks_jobs(
    quiet_emulator: Emulator, tmp_path: Path
) -> None:
    """``--allow-empty``: an empty read is what the user made, at a restart too."""

    async def body(house: Housekeeping) -> None:
        write_task(house.tasks, "a1", successfulRunsHistoryLimit=10)
        await house.run_pass()
        await house.finished_jobs("default/a1", 2)
        (house.tasks / "a1.yaml").unlink()
        house.restart(allow_empty=True)
        await house.run_pass()
        assert await house.supervisor.clean(None) == 2
        assert house.names("default") == []

    play(quiet_emulator, tmp_path, ["default"], body)


def test_the_last_api_task_deleted_has_its_jobs_deleted(
    quiet_emulator: Emulator, tmp_path: Path
) -> None:
    """The API source is authoritative: deleting its last task removes the task (no hold), and
    its finished Jobs go, although no task is declared any more."""

    async def body(house: Housekeeping) -> None:
        files = ApiTaskFiles(tmp_path / "api")
        house.restart([ApiSource(files), DirectorySource([house.tasks])])
        files.write("default/a1", task_text("a1", successfulRunsHistoryLimit=10))
        await house.run_pass()
        await house.finished_jobs("default/a1", 2)
        files.remove("default/a1")
        removed = await house.run_pass()
        assert removed.plan.summary() == "0 to add, 0 to change, 1 to remove, 0 unchanged"
        assert await house.supervisor.clean(None) == 2
        assert house.names("default") == []

    play(quiet_emulator, tmp_path, ["default"], body)


def test_a_restart_of_api_tasks_only_deletes_the_last_removed_tasks_jobs(
    quiet_emulator: Emulator, tmp_path: Path
) -> None:
    """The last API task deleted, crontask restarted before its finished Jobs went (a rolling
    update; a Job still running at the deletion ends after it): the API's empty read is what
    the user made, so the first pass's clean-up deletes them, as it did before the hold on
    an empty start (which is for a folder or a checkout read empty)."""

    async def body(house: Housekeeping) -> None:
        files = ApiTaskFiles(tmp_path / "api")
        house.restart([ApiSource(files)])
        files.write("default/a1", task_text("a1", successfulRunsHistoryLimit=10))
        await house.run_pass()
        await house.finished_jobs("default/a1", 2)
        files.remove("default/a1")
        house.restart([ApiSource(files)])
        await house.run_pass()
        assert await house.supervisor.clean(None) == 2
        assert house.names("default") == []

    play(quiet_emulator, tmp_path, ["default"], body)
