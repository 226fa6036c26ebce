"""A fenced replica (it cannot renew its membership; its tasks may have moved) writes no CronTask
status: the writer holds every write until the fence lifts, sends one only while the task is
still this replica's, and a run-now value seen meanwhile is neither recorded nor run until
then. The stale runs of a task kept through the fence are not written back over the lastRun
another replica recorded meanwhile. Against the emulator, with the real writer; "paused" is
what the wiring reads from the dispatcher."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client

from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.desired import DesiredState
from reconciler.core.model import API_GROUP
from reconciler.core.runs import RunRecord, RunStatus, Trigger
from reconciler.core.status import ObjectRef
from reconciler.sinks.kubernetes import StatusWriter
from reconciler.sinks.kubernetes_report import StatusReporter
from tests.k8s.emulator import Emulator

pytestmark = pytest.mark.usefixtures("real_crd")

KEY = "default/a"
STATUS_PATH = f"/apis/{API_GROUP}/{VERSION}/namespaces/default/{PLURAL}/a/status"
AT = datetime(2030, 1, 1, tzinfo=UTC)
# The lastRun of a newer run, every field of ours replaced (a merge patch keeps the others).
THEIRS = {
    "id": "theirs",
    "result": "failed",
    "startTime": "2030-01-01T00:01:00Z",
    "completionTime": "2030-01-01T00:01:01Z",
    "durationMs": 1000,
    "exitCode": 1,
}


class Replica:
    """What the wiring gives the writer and the reporter: whether the dispatcher is paused,
    whether the task is ours; the event loop's callbacks are run when the test says."""

    def __init__(self, api: Any) -> None:
        self.paused = False
        self.ours = True
        self.fired: list[str] = []
        self.loop: list[Callable[[], None]] = []
        self.writer = StatusWriter(api, backoff=0.02, max_backoff=0.1)
        self.writer.held = lambda: self.paused
        self.writer.owns = lambda key: self.ours
        self.reporter = StatusReporter(
            self.writer,
            None,
            active=lambda key: (),
            next_run=lambda key, now: None,
            fire_manual=lambda key: self.fired.append(key) or None,  # type: ignore[func-returns-value]
            on_loop=self.loop.append,
            mine=lambda key: self.ours,
        )

    def run_loop(self) -> None:
        callbacks, self.loop[:] = list(self.loop), []
        for callback in callbacks:
            callback()


@pytest.fixture
def replica(k8s_api_client: Any) -> Iterator[Replica]:
    made = Replica(k8s_api_client)
    made.writer.start()
    yield made
    made.paused = False
    made.writer.stop(timeout=2.0)


def create(api: Any, annotations: Mapping[str, str] | None = None) -> None:
    body = {
        "apiVersion": f"{API_GROUP}/{VERSION}",
        "kind": "CronTask",
        "metadata": {"name": "a", "namespace": "default", "annotations": dict(annotations or {})},
        "spec": {"schedule": "* * * * *", "command": {"args": ["true"]}},
    }
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        API_GROUP, VERSION, "default", PLURAL, body
    )


def ref(emulator: Emulator) -> ObjectRef:
    """The object as the informer would hand it over now."""
    (obj,) = [o for o in emulator.objects("ct") if o["metadata"]["name"] == "a"]
    meta = obj["metadata"]
    return ObjectRef(
        "default",
        "a",
        meta["uid"],
        meta["resourceVersion"],
        meta["generation"],
        (meta.get("annotations") or {}).get("crontask.dev/run-now"),
        obj.get("status") or {},
    )


def status(emulator: Emulator) -> Mapping[str, Any]:
    found: Mapping[str, Any] = ref(emulator).status
    return found


def status_writes(emulator: Emulator) -> int:
    return sum(1 for method, path in emulator.requests if method == "PATCH" and path == STATUS_PATH)


def full_pass(replica: Replica, emulator: Emulator) -> None:
    replica.reporter.after_pass({KEY: ref(emulator)}, DesiredState({}), {}, None)


def finished(run: str) -> RunRecord:
    return RunRecord(
        id=run,
        task=KEY,
        scheduled_at=AT,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.SUCCEEDED,
        started_at=AT,
        finished_at=AT,
        exit_code=0,
    )


def test_a_paused_replica_sends_no_status_write_until_the_fence_lifts(
    emulator: Emulator, k8s_api_client: Any, replica: Replica
) -> None:
    create(k8s_api_client)
    replica.paused = True
    full_pass(replica, emulator)
    assert replica.writer.flush(5.0)  # a held write waits for no one
    assert replica.writer.idle()
    assert (status_writes(emulator), status(emulator)) == (0, {})
    replica.paused = False
    assert replica.writer.flush(5.0)
    assert status_writes(emulator) == 1
    assert status(emulator)["observedGeneration"] == 1


def test_a_write_queued_before_a_handover_is_dropped(
    emulator: Emulator, k8s_api_client: Any, replica: Replica
) -> None:
    create(k8s_api_client)
    told: list[Mapping[str, Any] | None] = []
    replica.paused = True
    replica.writer.submit(ref(emulator), lambda current: {"activeCount": 0}, written=told.append)
    replica.ours = False  # the renewal that lifts the fence finds the task moved
    replica.paused = False
    assert replica.writer.flush(5.0)
    assert (status_writes(emulator), status(emulator), told) == (0, {}, [None])


def test_a_run_now_seen_while_fenced_is_recorded_and_run_once_the_fence_lifts(
    emulator: Emulator, k8s_api_client: Any, replica: Replica
) -> None:
    create(k8s_api_client, {"crontask.dev/run-now": "v1"})
    replica.paused = True
    full_pass(replica, emulator)
    assert replica.writer.flush(5.0)
    replica.run_loop()
    assert (replica.fired, status(emulator).get("lastRunNow")) == ([], None)
    replica.reporter.resumed([KEY])
    replica.paused = False
    assert replica.writer.flush(5.0)
    replica.run_loop()
    assert (replica.fired, status(emulator).get("lastRunNow")) == ([KEY], "v1")
    full_pass(replica, emulator)  # the object as the watch brings it back: run once
    assert replica.writer.flush(5.0)
    replica.run_loop()
    assert replica.fired == [KEY]


def test_a_run_now_seen_while_fenced_on_a_task_that_moved_is_left_to_its_new_owner(
    emulator: Emulator, k8s_api_client: Any, replica: Replica
) -> None:
    create(k8s_api_client, {"crontask.dev/run-now": "v1"})
    replica.paused = True
    full_pass(replica, emulator)
    replica.ours = False
    replica.paused = False
    assert replica.writer.flush(5.0)
    replica.run_loop()
    assert (replica.fired, status(emulator).get("lastRunNow")) == ([], None)


def test_the_runs_of_a_task_kept_through_a_fence_are_not_written_back(
    emulator: Emulator, k8s_api_client: Any, replica: Replica
) -> None:
    create(k8s_api_client)
    full_pass(replica, emulator)
    replica.reporter.on_run(finished("ours"))
    assert replica.writer.flush(5.0)
    assert status(emulator)["lastRun"]["id"] == "ours"
    replica.paused = True
    # Meanwhile the task's new owner ran it (our lease had run out) and recorded its run.
    client.CustomObjectsApi(k8s_api_client).patch_namespaced_custom_object_status(
        API_GROUP, VERSION, "default", PLURAL, "a", {"status": {"lastRun": THEIRS}}
    )
    full_pass(replica, emulator)  # a spec edit, say: the status submitted again, held
    assert replica.writer.flush(5.0)
    assert status(emulator)["lastRun"] == THEIRS
    # The renewal that lifts the fence finds the task ours again (the same members).
    replica.reporter.resumed([KEY])
    replica.paused = False
    assert replica.writer.flush(5.0)
    assert status(emulator)["lastRun"] == THEIRS
