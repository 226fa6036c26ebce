"""A CronTask that loses its key to a folder task while a run of its own is still going (its
Job runs on) keeps showing that run: listed as active while it goes, and its end as lastRun,
so that ``lastRun.result: running`` never stands beside ``activeCount: 0``. The winner's runs
still never show."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.model import API_GROUP
from tests.k8s.emulator import Emulator
from tests.k8s.test_source_kubernetes import crontask
from tests.k8s.test_status_report_conflict import folder_task, reporting, source  # noqa: F401
from tests.k8s.test_status_report_recreated import Reporting, failed, running, stored

pytestmark = pytest.mark.usefixtures("real_crd")


def test_the_objects_own_run_still_going_stays_shown_after_a_lost_conflict(
    k8s_api_client: Any,
    emulator: Emulator,
    source: Any,  # noqa: F811
    reporting: Reporting,  # noqa: F811
) -> None:
    api: Any = client.CustomObjectsApi(k8s_api_client)
    api.create_namespaced_custom_object(
        API_GROUP, VERSION, "default", PLURAL, crontask("cf", schedule="0 0 1 1 *")
    )
    assert source.start(5.0)
    reporting.run_pass(full=True)
    ours = running("default.cf.1", "default/cf", 0)
    reporting.start(ours)
    reporting.flush()
    assert stored(emulator, "cf")["status"]["activeCount"] == 1

    reporting.run_pass([folder_task()], full=True)  # the folder task wins the key
    reporting.flush()
    status = stored(emulator, "cf")["status"]
    assert status["conditions"][0]["reason"] == "Conflict"
    assert status["lastRun"]["result"] == "running"
    assert (status["activeCount"], [a["name"] for a in status["active"]]) == (1, [ours.id])

    theirs = running("default.cf.2", "default/cf", 3)  # the folder task's run
    reporting.start(theirs)
    reporting.flush()
    assert stored(emulator, "cf")["status"]["activeCount"] == 1

    reporting.finish(failed(ours))
    reporting.flush()
    status = stored(emulator, "cf")["status"]
    assert status["lastRun"]["id"] == ours.id
    assert status["lastRun"]["result"] == "failed"
    assert (status["activeCount"], status["active"]) == (0, [])
