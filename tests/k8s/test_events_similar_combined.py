"""A job task's RunFailed Events each name their Job, so no two have the same message: like
client-go's EventAggregator, from the tenth different message of one object, type and reason
on they are one Event, ``(combined from similar events): <the latest message>``, whose count
grows. Against the emulator, the recorder's worker thread and all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client

from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.model import API_GROUP
from reconciler.core.run_events import run_event
from reconciler.core.runs import JobDetails, RunRecord, RunStatus, Trigger
from reconciler.core.status import ObjectRef
from reconciler.sinks.kubernetes_events import EventRecorder
from tests.k8s.emulator import Emulator
from tests.k8s.test_source_kubernetes import crontask

pytestmark = pytest.mark.usefixtures("real_crd")

T0 = datetime(2026, 12, 4, tzinfo=UTC)
COMBINED = "(combined from similar events): "


def object_ref(api: Any, name: str) -> ObjectRef:
    obj = api.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, crontask(name))
    meta = obj["metadata"]
    return ObjectRef("default", name, meta["uid"], meta["resourceVersion"], 1)


def job_failure(task: str, minute: int) -> RunRecord:
    """A failed run of a job task, its Job named after its slot (as crontask names them)."""
    at = T0 + timedelta(minutes=minute)
    job = JobDetails("default", f"{task.split('/')[1]}-{int(at.timestamp()) // 60}")
    return RunRecord(
        f"{task}.{minute}",
        task,
        at,
        Trigger.SCHEDULE,
        RunStatus.FAILED,
        exit_code=1,
        reason="BackoffLimitExceeded",
        output="error: db down\n",
        job=job,
    )


def test_failures_naming_their_jobs_are_combined_into_one_event(
    emulator: Emulator, k8s_api_client: Any
) -> None:
    api = client.CustomObjectsApi(k8s_api_client)
    bk, other = object_ref(api, "bk"), object_ref(api, "other")
    recorder = EventRecorder(k8s_api_client, qps=100.0)
    recorder.start()
    messages = []
    try:
        for minute in range(12):
            event = run_event(job_failure("default/bk", minute))
            assert event is not None
            messages.append(event.message)
            recorder.emit(bk, event)
        # Another object's failure is its own Event, however many bk had.
        other_event = run_event(job_failure("default/other", 0))
        assert other_event is not None
        recorder.emit(other, other_event)
        assert recorder.flush(5.0)
    finally:
        recorder.stop()
    assert len(set(messages)) == 12
    of_bk = [e for e in emulator.objects("events") if e["involvedObject"]["uid"] == bk.uid]
    single = sorted(e["message"] for e in of_bk if e["count"] == 1)
    assert single == sorted(messages[:9])  # the first nine, each its own Event
    (combined,) = [e for e in of_bk if e["message"].startswith(COMBINED)]
    assert combined["message"] == COMBINED + messages[-1]  # the latest
    assert (combined["count"], combined["reason"], combined["type"]) == (3, "RunFailed", "Warning")
    assert len(of_bk) == 10
    of_other = [e for e in emulator.objects("events") if e["involvedObject"]["uid"] == other.uid]
    assert [e["message"] for e in of_other] == [other_event.message]
    assert (recorder.created, recorder.patched) == (11, 2)
