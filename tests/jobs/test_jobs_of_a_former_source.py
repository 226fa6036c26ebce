"""Tasks moved from a folder (or git, or the API) into CronTask objects: the CronTask takes
the key over (a folder task wins the conflict while both declare it; once it is removed, the
CronTask is in force), and the Jobs the folder task made have no controller. They are not the
CronTask's runs (``test_job_trust``: a Job no CronTask controls is anyone's to make), so its
history limits never counted them, and as the key is declared they were no removed task's
either: they stayed for good, and their pods with them. Finished ones whose run this
crontask's run store records go, as a removed task's; one of another crontask's stays."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from reconciler.core.jobs import job_name
from reconciler.core.runs import RunStatus, run_id
from tests.helpers import wait_for
from tests.jobs.conftest import Crontask, Gate, condition, jobs, trigger, write_task
from tests.jobs.test_jobs_left_in_a_former_namespace import settled
from tests.jobs.test_jobs_of_a_former_job_task import resynced
from tests.jobs.test_lifecycle import ended
from tests.jobs.test_resource_jobs import cron_task, run_now, status
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import Kubectl

pytestmark = pytest.mark.usefixtures("real_crd")

KEY = "default/moved"
THEIRS = datetime(2026, 1, 1, tzinfo=UTC)  # the slot of a run this crontask never recorded


def theirs(job: dict[str, object]) -> dict[str, object]:
    """A Job as another crontask sharing the namespace makes for the same key: a slot of the
    task, no controller, a run this crontask's store does not hold."""
    made = copy.deepcopy(job)
    meta = made["metadata"]
    assert isinstance(meta, dict)
    run = run_id(KEY, THEIRS)
    name = job_name(KEY, THEIRS, 1, qualified=False)
    made["metadata"] = {
        "name": name,
        "namespace": "default",
        "labels": {**meta["labels"], "crontask.dev/run-id": run},
        "annotations": {
            **meta["annotations"],
            "crontask.dev/run-id": run,
            "crontask.dev/scheduled-time": THEIRS.isoformat().replace("+00:00", "Z"),
            "crontask.dev/trigger": "schedule",
        },
    }
    spec = made["spec"]
    assert isinstance(spec, dict)
    spec.pop("selector", None)  # the API server's, of the first Job
    template = spec["template"]
    assert isinstance(template, dict)
    template["metadata"] = {"labels": {"crontask.dev/run-id": run}}
    made.pop("status", None)
    return made


def ready(emulator: Emulator) -> bool:
    conditions = status(emulator, "moved").get("conditions") or ()
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


@pytest.mark.slow  # 6 s: a folder task's run, then its CronTask's takeover, on the emulator
def test_the_finished_jobs_of_a_folder_task_whose_key_a_crontask_took_go(
    crontask: Callable[..., Crontask], emulator: Emulator, kubectl: Kubectl
) -> None:
    instance = crontask("--kubernetes")
    write_task(instance.tasks, "moved", "true")
    write_task(instance.tasks, "stays", "true")  # the folder holds a task still: not emptied
    settled(instance, "task added", KEY)
    trigger(instance, KEY)
    wait_for("the folder task's run", lambda: len(ended(instance, KEY)) == 1)
    (folders,) = jobs(emulator, "default.moved")
    assert condition(folders) == "Complete"
    assert not folders["metadata"].get("ownerReferences")
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(theirs(folders)))
    wait_for(
        "the other crontask's Job complete",
        lambda: [
            j
            for j in jobs(emulator, "default.moved")
            if condition(j) and j["metadata"]["name"] != folders["metadata"]["name"]
        ],
    )
    # Both declare the key: the folder task wins. Then it goes, and the CronTask is in force.
    kubectl("apply", "-f", "-", stdin=cron_task("moved", "true"))
    wait_for("the conflict said", lambda: status(emulator, "moved").get("conditions"))
    (instance.tasks / "moved.yaml").unlink()
    wait_for("the CronTask in force", lambda: ready(emulator))
    wait_for(
        "the folder task's Job deleted",
        lambda: (
            folders["metadata"]["uid"]
            not in {j["metadata"]["uid"] for j in jobs(emulator, "default.moved")}
        ),
    )
    names = {j["metadata"]["name"] for j in jobs(emulator, "default.moved")}
    assert names == {job_name(KEY, THEIRS, 1, qualified=False)}  # not this crontask's run
    assert "why=former" in instance.log()


@pytest.mark.slow  # 8 s: a folder task's Job that runs across the takeover, on the emulator
def test_a_folder_tasks_job_that_runs_when_a_crontask_takes_the_key_is_recorded_then_goes(
    crontask: Callable[..., Crontask], emulator: Emulator, kubectl: Kubectl, tmp_path: Path
) -> None:
    """Its run is followed to its end and recorded before its Job goes: a Job whose run is
    followed, or ``running`` in the store, is never deleted."""
    gate = Gate(tmp_path)
    instance = crontask("--kubernetes")
    write_task(instance.tasks, "moved", gate.wait("echo moved-done"))
    write_task(instance.tasks, "stays", "true")
    settled(instance, "task added", KEY)
    trigger(instance, KEY)
    (running,) = wait_for("the folder task's Job", lambda: jobs(emulator, "default.moved"))
    kubectl("apply", "-f", "-", stdin=cron_task("moved", "true"))
    (instance.tasks / "moved.yaml").unlink()
    wait_for("the CronTask in force", lambda: ready(emulator))
    resyncs = resynced(instance)
    wait_for("two resyncs, each with its clean-up", lambda: resynced(instance) >= resyncs + 2)
    assert [j["metadata"]["uid"] for j in jobs(emulator, "default.moved")] == [
        running["metadata"]["uid"]
    ]
    gate.open()
    (record,) = wait_for("the folder task's run recorded", lambda: ended(instance, KEY))
    assert (record.status, record.output) == (RunStatus.SUCCEEDED, "moved-done\n")
    wait_for("its Job deleted", lambda: jobs(emulator, "default.moved") == [])


@pytest.mark.slow  # 8 s: a CronTask's run, its orphaning delete and its return, on the emulator
def test_a_crontasks_jobs_kept_by_an_orphaning_delete_go_once_it_is_applied_again(
    crontask: Callable[..., Crontask], emulator: Emulator, kubectl: Kubectl
) -> None:
    """``--cascade=orphan`` keeps them while no CronTask holds the key; once one does again,
    they are Jobs nothing controls of a key a CronTask holds, as a folder task's."""
    instance = crontask("--kubernetes")
    manifest = cron_task("moved", "true")
    kubectl("apply", "-f", "-", stdin=manifest)
    wait_for("the CronTask in force", lambda: ready(emulator))
    run_now(kubectl, "moved", "1")
    wait_for("its run", lambda: len(ended(instance, KEY)) == 1)
    (job,) = jobs(emulator, "default.moved")
    kubectl("delete", "ct", "moved", "--cascade=orphan")
    wait_for(
        "the Job orphaned",
        lambda: [
            j for j in jobs(emulator, "default.moved") if not j["metadata"].get("ownerReferences")
        ],
    )
    resyncs = resynced(instance)
    wait_for("two resyncs, each with its clean-up", lambda: resynced(instance) >= resyncs + 2)
    assert [j["metadata"]["uid"] for j in jobs(emulator, "default.moved")] == [
        job["metadata"]["uid"]
    ]
    kubectl("apply", "-f", "-", stdin=manifest)  # the same name, a new uid
    wait_for("its Job deleted", lambda: jobs(emulator, "default.moved") == [])
