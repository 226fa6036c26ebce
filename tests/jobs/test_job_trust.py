"""Which Jobs are a task's: never a Job that only says so. Its annotations are anyone's to write
who may create a Job where crontask watches; a task's Job is in the task's Job namespace, has
the name of one of its slots and attempts, and (a CronTask's) is controlled by that CronTask.
Such a Job is neither adopted (it would block Forbid, land in the history and status, and
claim a slot), nor cleaned up as the task's."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
import yaml

from reconciler.controller.dispatch import Dispatcher
from reconciler.core.jobs import job_manifest, job_name, run_in, run_of
from reconciler.core.runs import JobDetails, RunStatus, run_id
from reconciler.core.status import ObjectRef
from reconciler.runner.base import Actions
from reconciler.runner.job import JobRunner
from reconciler.store import MemoryRunStore
from tests.helpers import wait_for
from tests.jobs.conftest import Crontask
from tests.jobs.test_job_runner import KEY, NAME, POD, T0, job_task, record, until
from tests.jobs.twin import ApiError, FakeCluster
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import Kubectl
from tests.k8s.emulator.manifests import job as emulator_job

CRONTASK = ObjectRef("default", "job", "ct-uid", "1", 1)


def mine(**fields: Any) -> dict[str, Any]:
    """The Job of the first attempt of the run at T0, as crontask makes it (owned by
    ``CRONTASK``), with ``metadata`` fields replaced."""
    job = job_manifest(job_task(), record(), namespace="default", name=NAME, env={}, owner=CRONTASK)
    job["metadata"].update(fields)
    return job


def annotated(job: dict[str, Any], **notes: str) -> dict[str, Any]:
    job = copy.deepcopy(job)
    job["metadata"]["annotations"].update({f"crontask.dev/{k}": v for k, v in notes.items()})
    return job


FUTURE = T0 + timedelta(hours=1)
ELSEWHERE = job_name(KEY, T0, 1, qualified=True)  # the name it would have in another namespace


@pytest.mark.parametrize(
    ("job", "owner_uid", "trusted"),
    [
        (mine(), "ct-uid", True),
        (mine(ownerReferences=[]), None, True),  # a task from a folder, git or the API
        # A CronTask's, met by a task from another source that holds its key now, or after
        # the CronTask's deletion with --cascade=orphan (before the reference goes).
        (mine(), None, False),
        (mine(namespace="evil"), None, False),
        (mine(namespace="evil", name=ELSEWHERE), None, False),  # the qualified name, elsewhere
        (mine(name="job-backup"), None, False),  # not the name of the run's attempt
        (mine(name=f"{NAME}-2"), None, False),  # the name of another attempt
        (mine(), "another-uid", False),  # a CronTask of the same name, made again
        (mine(ownerReferences=[]), "ct-uid", False),
        (annotated(mine(), task="default/other"), None, False),
        (annotated(mine(), **{"run-id": "default.other.20261130T120000Z"}), None, False),
        (annotated(mine(), **{"run-id": "default.job.2026113T120000Z"}), None, False),
    ],
)
def test_a_job_is_a_tasks_run_only_where_named_and_owned_as_the_task_makes_it(
    job: dict[str, Any], owner_uid: str | None, trusted: bool
) -> None:
    assert (run_in(job, KEY, "default", owner_uid) is not None) is trusted


def test_a_run_id_that_is_not_a_slot_of_the_task_is_no_run() -> None:
    assert run_of(mine()) is not None
    assert run_of(annotated(mine(), **{"run-id": "default.other.20261130T120000Z"})) is None
    assert run_of(annotated(mine(), **{"run-id": "default.job.garbage"})) is None


def posing(at: Any, namespace: str, name: str, *, owner: ObjectRef | None = None) -> dict[str, Any]:
    """A Job somebody else made that says it is the run of ``KEY`` at ``at``."""
    job = job_manifest(
        job_task(), record(at=at), namespace=namespace, name=name, env={}, owner=owner
    )
    return job


@pytest.mark.parametrize("crontask", [False, True])
def test_a_job_that_poses_as_a_tasks_run_is_not_adopted(crontask: bool) -> None:
    """Forbid does not skip for it, and the slot its run id names is still the task's."""
    store = MemoryRunStore()

    async def main() -> None:
        cluster = FakeCluster()
        owner: Callable[[str], ObjectRef | None] = lambda key: CRONTASK if crontask else None  # noqa: E731
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.05, owner=owner)
        d = Dispatcher(store, owner="h:2:new", clock=lambda: T0, actions=Actions([runner]))
        d.resumable = runner
        runner.progress = d.progress
        # In another namespace, with the name it would have there; in the task's namespace
        # but not named as the run's attempt; and a run of a slot to come.
        cluster.add(posing(T0 - timedelta(hours=1), "evil", "spoof-1"))
        cluster.add(posing(T0 - timedelta(hours=2), "evil", job_name(KEY, T0, 1, qualified=True)))
        cluster.add(posing(T0 - timedelta(hours=3), "default", "spoof-3"))
        cluster.add(posing(FUTURE, "evil", "spoof-4"))
        if crontask:  # named right, in the right namespace, but not the CronTask's
            stranger = ObjectRef("default", "job", "other-uid", "1", 1)
            late = T0 - timedelta(hours=4)
            cluster.add(
                posing(late, "default", job_name(KEY, late, 1, qualified=False), owner=stranger)
            )
        assert runner.running(KEY) == []
        task = job_task(concurrencyPolicy="Forbid")
        fired = d.fire(task, T0)
        assert fired.status is RunStatus.RUNNING
        await until(lambda: NAME in cluster.jobs)
        cluster.finish(NAME)
        await until(lambda: (store.get(fired.id) or fired).status is RunStatus.SUCCEEDED)
        await until(lambda: not d.active(KEY))
        later = d.fire(task, FUTURE)
        assert later.status is RunStatus.RUNNING
        await until(lambda: job_name(KEY, FUTURE, 1, qualified=False) in cluster.jobs)
        for hours in (1, 2, 3, 4):
            assert store.get(run_id(KEY, T0 - timedelta(hours=hours))) is None
        assert store.get(run_id(KEY, FUTURE)) is not None
        await d.shutdown(0)

    asyncio.run(main())


def test_a_tasks_own_job_left_running_is_still_adopted() -> None:
    """The other side: a Job crontask made for the CronTask, running after a restart."""

    async def main() -> None:
        cluster = FakeCluster()
        runner = JobRunner(cluster, namespace="default", owner=lambda key: CRONTASK)
        earlier = T0 - timedelta(hours=1)
        name = job_name(KEY, earlier, 1, qualified=False)
        cluster.add(posing(earlier, "default", name, owner=CRONTASK))
        (found,) = runner.running(KEY)
        assert (found.id, found.job and found.job.name) == (run_id(KEY, earlier), name)

    asyncio.run(main())


def test_a_job_controlled_by_a_crontask_not_in_force_is_no_run_of_the_task() -> None:
    """A CronTask's running Job, once the key's definition in force is another source's (a
    folder task won the key, or the CronTask is gone): Forbid does not wait for it, Replace
    does not delete it. Without a controller, the same Job is the task's."""

    async def main() -> None:
        cluster = FakeCluster()
        runner = JobRunner(cluster, namespace="default", owner=lambda key: None)
        earlier = T0 - timedelta(hours=1)
        name = job_name(KEY, earlier, 1, qualified=False)
        theirs = cluster.add(posing(earlier, "default", name, owner=CRONTASK))
        assert runner.running(KEY) == []
        assert run_in(theirs, KEY, "default") is None
        ours = cluster.add(posing(earlier, "default", name))  # the same Job, with no owner
        assert run_in(ours, KEY, "default") is not None
        assert [r.id for r in runner.running(KEY)] == [run_id(KEY, earlier)]

    asyncio.run(main())


def test_a_folder_tasks_job_in_its_own_namespace_is_found_once_its_definition_is_seen() -> None:
    """A task from a folder whose spec.job.namespace is not --job-namespace: after a restart,
    its Job running there is its run as soon as a pass has shown the runner its definition,
    before any attempt of it in this process."""

    async def main() -> None:
        cluster = FakeCluster()
        runner = JobRunner(cluster, namespace="default")
        task = job_task(job={"namespace": "batch", "spec": {"template": {"spec": POD}}})
        earlier = T0 - timedelta(hours=1)
        name = job_name(KEY, earlier, 1, qualified=True)
        cluster.add(job_manifest(task, record(at=earlier), namespace="batch", name=name, env={}))
        assert runner.running(KEY) == []  # where it would go without a definition: default
        assert runner.place(task) == "batch"
        (found,) = runner.running(KEY)
        assert (found.id, found.job and found.job.name) == (run_id(KEY, earlier), name)

    asyncio.run(main())


@pytest.mark.slow  # two crontasks and their Jobs: 11 s
@pytest.mark.usefixtures("real_crd")
def test_a_job_in_another_namespace_is_neither_recorded_nor_cleaned_up_as_the_tasks(
    crontask: Callable[..., Crontask], emulator: Emulator, kubectl: Kubectl
) -> None:
    """End to end, with --all-namespaces: a finished Job in namespace "evil" annotated as a
    run of default/backup. The task's run is its own; history limit 0 deletes its own Jobs
    and leaves that one alone."""
    emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "evil"}})
    spoof = emulator_job("spoof", "echo pwned-by-evil; exit 3", namespace="evil", backoffLimit=0)
    spoof["metadata"]["labels"] = {
        "crontask.dev/run-id": "x",
        "crontask.dev/task": "default.backup",
    }
    spoof["metadata"]["annotations"] = {
        "crontask.dev/task": "default/backup",
        "crontask.dev/run-id": "default.backup.20300101T000000Z",
        "crontask.dev/attempt": "1",
        "crontask.dev/scheduled-time": "2030-01-01T00:00:00Z",
    }
    emulator.create(spoof)
    wait_for(
        "the spoof failed",
        lambda: any(
            c.get("type") == "Failed"
            for j in emulator.objects("jobs")
            if j["metadata"]["name"] == "spoof"
            for c in (j.get("status") or {}).get("conditions") or ()
        ),
    )
    instance = crontask("--kubernetes", "--all-namespaces")
    container = {"name": "main", "image": "busybox", "command": ["sh", "-c", "echo real"]}
    ct = {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": "backup", "namespace": "default"},
        "spec": {
            "schedule": "0 0 1 1 *",
            "successfulRunsHistoryLimit": 0,
            "failedRunsHistoryLimit": 0,
            "job": {"spec": {"backoffLimit": 0, "template": {"spec": {"containers": [container]}}}},
        },
    }
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(ct))
    wait_for(
        "the CronTask read",
        lambda: any(
            (o.get("status") or {}).get("observedGeneration") == 1 for o in emulator.objects("ct")
        ),
    )
    kubectl("annotate", "ct", "backup", "crontask.dev/run-now=1", "--overwrite")

    def runs() -> list[dict[str, Any]]:
        answer = httpx.get(
            f"{instance.server}/api/v1/runs", params={"task": "default/backup"}, timeout=10
        )
        items: list[dict[str, Any]] = answer.json().get("items") or []
        return items

    (run,) = wait_for(
        "the manual run succeeded", lambda: [r for r in runs() if r["status"] == "succeeded"]
    )
    wait_for(
        "its own Job cleaned up",
        lambda: (
            not [j for j in emulator.objects("jobs") if j["metadata"]["namespace"] == "default"]
        ),
    )
    assert "spoof" in {j["metadata"]["name"] for j in emulator.objects("jobs")}
    assert [r["id"] for r in runs()] == [run["id"]]


class AnswersAfterMaking(FakeCluster):
    """An API server that makes nothing and never answers a create (so the name is read)."""

    async def create(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        self.calls.append(("create", body["metadata"]["name"]))
        raise ApiError("cannot create Job: ReadTimeoutError: read timed out")


@pytest.mark.parametrize(
    ("found_by", "owner"),
    [
        ("a 409", None),  # no ownerReference at all
        ("a 409", ObjectRef("default", "job", "other-uid", "1", 1)),  # another CronTask's
        ("an unanswered create", None),
        ("a restart", None),
    ],
)
def test_a_job_of_the_runs_name_that_the_crontask_does_not_control_is_never_taken(
    found_by: str, owner: ObjectRef | None
) -> None:
    """A CronTask's run meets, at its Job's name, a Job with the run's labels and annotations
    that somebody else made: it is not followed as the run's (its outcome would be recorded
    as the run's, with its log), whether the create answered 409, went unanswered, or the
    run is resumed after a restart; and it is left alone."""

    async def main() -> None:
        cluster = AnswersAfterMaking() if found_by == "an unanswered create" else FakeCluster()
        runner = JobRunner(
            cluster,
            namespace="default",
            verify_seconds=0.05,
            create_attempts=1,
            owner=lambda key: CRONTASK,
        )
        forged = cluster.add(posing(T0, "default", NAME, owner=owner))
        cluster.finish(NAME, log="forged: nothing backed up\n")
        if found_by == "a restart":
            outcome = await runner.resume(record(job=JobDetails("default", NAME))).run()
            assert (outcome.status, outcome.reason) == (RunStatus.INTERRUPTED, "JobGone")
        else:
            outcome = await runner.attempt(job_task(), record()).run()
            reason = "JobNameTaken" if found_by == "a 409" else "JobCreateFailed"
            assert (outcome.status, outcome.reason) == (RunStatus.FAILED, reason)
        assert outcome.output == ""
        assert outcome.job is None or outcome.job.uid != forged["metadata"]["uid"]
        assert not [c for c in cluster.calls if c[0] == "delete"]
        assert NAME in cluster.jobs

    asyncio.run(main())


def test_a_crontasks_job_found_at_its_name_is_not_a_folder_tasks_run() -> None:
    """A folder task that won the key of a CronTask meets, at its create, the Job the
    CronTask made for the same slot: not its run (JobNameTaken), whatever its annotations."""

    async def main() -> None:
        cluster = FakeCluster()
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.05)
        cluster.add(posing(T0, "default", NAME, owner=CRONTASK))
        cluster.finish(NAME, log="ran once\n")
        outcome = await runner.attempt(job_task(), record()).run()
        assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "JobNameTaken")

    asyncio.run(main())


def test_a_folder_tasks_job_found_at_its_name_is_still_adopted_without_an_owner() -> None:
    """A task from a folder, git or the API has no CronTask to control its Jobs: its own Job
    met by a 409 (made before a restart) is adopted as before."""

    async def main() -> None:
        cluster = FakeCluster()
        runner = JobRunner(cluster, namespace="default", verify_seconds=0.05)
        cluster.add(posing(T0, "default", NAME))
        cluster.finish(NAME, log="ran once\n")
        outcome = await runner.attempt(job_task(), record()).run()
        assert (outcome.status, outcome.output) == (RunStatus.SUCCEEDED, "ran once\n")

    asyncio.run(main())
