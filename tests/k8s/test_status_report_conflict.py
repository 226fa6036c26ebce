"""A CronTask that loses a key conflict to a folder task (status: Conflict) shows none of that
task's runs: no active run, no lastRun or failure time, no RunFailed Event. Once the folder
task is gone, the CronTask's own definition is in force and its runs show again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.desired import Definition, Location, SourceKind
from reconciler.core.model import API_GROUP, CronTask
from reconciler.sources.kubernetes import KubernetesSource
from tests.k8s.emulator import Emulator
from tests.k8s.test_source_kubernetes import crontask
from tests.k8s.test_status_report_recreated import (
    Reporting,
    events_of,
    failed,
    running,
    stored,
)

pytestmark = pytest.mark.usefixtures("real_crd")


@pytest.fixture
def source(k8s_api_client: Any) -> Iterator[KubernetesSource]:
    src = KubernetesSource(k8s_api_client, "default")
    yield src
    src.stop()


@pytest.fixture
def reporting(k8s_api_client: Any, source: KubernetesSource) -> Iterator[Reporting]:
    harness = Reporting(k8s_api_client, source)
    yield harness
    harness.stop()


def folder_task() -> Definition:
    """default/cf in a folder: every 3 minutes, exits 7."""
    document = crontask("cf", schedule="*/3 * * * *", command={"args": ["sh", "-c", "exit 7"]})
    task = CronTask.model_validate(document)
    return Definition.of(task, Location(SourceKind.FILE, "/tasks/cf.yaml", 1, 1))


def test_a_crontask_that_lost_a_conflict_shows_none_of_the_winners_runs(
    k8s_api_client: Any, emulator: Emulator, source: KubernetesSource, reporting: Reporting
) -> None:
    api: Any = client.CustomObjectsApi(k8s_api_client)
    created = api.create_namespaced_custom_object(
        API_GROUP, VERSION, "default", PLURAL, crontask("cf", schedule="0 0 1 1 *")
    )
    uid = created["metadata"]["uid"]
    assert source.start(5.0)
    winner = folder_task()
    reporting.run_pass([winner], full=True)
    reporting.flush()
    ready = stored(emulator, "cf")["status"]["conditions"][0]
    assert (ready["type"], ready["reason"]) == ("Ready", "Conflict")

    theirs = running("default.cf.1", "default/cf", 0)  # the folder task's run
    reporting.start(theirs)
    reporting.flush()
    assert stored(emulator, "cf")["status"]["activeCount"] == 0
    reporting.finish(failed(theirs))
    reporting.flush()
    status = stored(emulator, "cf")["status"]
    assert {"lastRun", "lastFailureTime", "lastScheduleTime"}.isdisjoint(status)
    assert (status["activeCount"], status["active"]) == (0, [])
    assert events_of(emulator, uid) == []

    # The folder task is gone: the CronTask's definition is in force, its runs are its own.
    reporting.run_pass(full=True)
    ours = running("default.cf.2", "default/cf", 3)
    reporting.start(ours)
    reporting.flush()
    assert stored(emulator, "cf")["status"]["activeCount"] == 1
    reporting.finish(failed(ours))
    reporting.flush()
    status = stored(emulator, "cf")["status"]
    assert status["lastRun"]["id"] == "default.cf.2"
    assert [e["reason"] for e in events_of(emulator, uid)] == ["RunFailed"]
