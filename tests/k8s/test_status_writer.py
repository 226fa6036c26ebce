"""The status writer and the event recorder against the emulator: merge patches through
/status, no write when nothing differs, coalescing, 409 and 5xx retries, Event aggregation."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from kubernetes import client

from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.model import API_GROUP
from reconciler.core.run_events import EventSpec
from reconciler.core.status import ObjectRef
from reconciler.sinks.kubernetes import StatusWriter
from reconciler.sinks.kubernetes_events import EventRecorder
from reconciler.sinks.token_bucket import TokenBucket
from tests.helpers import wait_for
from tests.k8s.emulator import Emulator

pytestmark = pytest.mark.usefixtures("real_crd")

STATUS_PATH = f"/apis/{API_GROUP}/{VERSION}/namespaces/default/{PLURAL}/a/status"


@pytest.fixture
def obj(k8s_api_client: Any) -> dict[str, Any]:
    api = client.CustomObjectsApi(k8s_api_client)
    body = {
        "apiVersion": f"{API_GROUP}/{VERSION}",
        "kind": "CronTask",
        "metadata": {"name": "a", "namespace": "default"},
        "spec": {"schedule": "* * * * *", "command": {"args": ["true"]}},
    }
    created = api.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, body)
    assert isinstance(created, dict)
    return created


def ref_of(obj: dict[str, Any]) -> ObjectRef:
    meta = obj["metadata"]
    return ObjectRef(
        "default", meta["name"], meta["uid"], meta["resourceVersion"], meta["generation"]
    )


@pytest.fixture
def writer(k8s_api_client: Any) -> Iterator[StatusWriter]:
    w = StatusWriter(k8s_api_client, backoff=0.02, max_backoff=0.1)
    w.start()
    yield w
    w.stop(timeout=2.0)


def stored(emulator: Emulator, name: str = "a") -> dict[str, Any]:
    (found,) = [o for o in emulator.objects("ct") if o["metadata"]["name"] == name]
    return found


def status_writes(emulator: Emulator) -> int:
    return sum(1 for method, path in emulator.requests if method == "PATCH" and path == STATUS_PATH)


def setting(**fields: Any) -> Any:
    def build(current: Mapping[str, Any]) -> dict[str, Any]:
        return {**current, **fields}

    return build


def test_writes_through_status_with_a_merge_patch(
    emulator: Emulator, obj: dict[str, Any], writer: StatusWriter
) -> None:
    writer.submit(ref_of(obj), setting(observedGeneration=1, activeCount=0))
    assert writer.flush(5.0)
    after = stored(emulator)
    assert after["status"] == {"observedGeneration": 1, "activeCount": 0}
    assert after["metadata"]["generation"] == 1  # status never bumps the generation
    (patch,) = [r for r in emulator.request_log if r.method == "PATCH"]
    assert patch.path == STATUS_PATH
    assert patch.content_type.startswith("application/merge-patch+json")


def test_no_write_when_nothing_differs(
    emulator: Emulator, obj: dict[str, Any], writer: StatusWriter
) -> None:
    ref = ref_of(obj)
    writer.submit(ref, setting(activeCount=0))
    assert writer.flush(5.0)
    for _ in range(5):
        writer.submit(ref, setting(activeCount=0))
        assert writer.flush(5.0)
    assert status_writes(emulator) == 1
    assert writer.skipped == 5


def test_many_updates_coalesce_into_few_writes(
    emulator: Emulator, obj: dict[str, Any], writer: StatusWriter
) -> None:
    ref = ref_of(obj)
    for n in range(200):
        writer.submit(ref, setting(activeCount=n))
    assert writer.flush(5.0)
    assert stored(emulator)["status"]["activeCount"] == 199  # the newest won
    assert status_writes(emulator) <= 5


def patch_status(api: Any, status: dict[str, Any]) -> dict[str, Any]:
    """Another writer changes the status (what a second controller or a human would do)."""
    result = api.patch_namespaced_custom_object_status(
        API_GROUP,
        VERSION,
        "default",
        PLURAL,
        "a",
        {"status": status},
        _content_type="application/merge-patch+json",
    )
    assert isinstance(result, dict)
    return result


def test_a_write_made_meanwhile_is_a_real_conflict_and_is_not_lost(
    emulator: Emulator, obj: dict[str, Any], writer: StatusWriter, k8s_api_client: Any
) -> None:
    api = client.CustomObjectsApi(k8s_api_client)
    ref = ref_of(obj)
    writer.submit(ref, setting(activeCount=0))
    assert writer.flush(5.0)
    # Someone else writes status meanwhile. The writer still holds the version its own write
    # returned: its next patch carries that version, and the server refuses it.
    patch_status(api, {"lastRunNow": "x"})
    seen: list[Mapping[str, Any]] = []

    def build(current: Mapping[str, Any]) -> dict[str, Any]:
        seen.append(dict(current))
        return {**current, "activeCount": 1}

    writer.submit(ref, build)
    assert writer.flush(5.0)
    # No fault was injected: the server refused the patch because it carried the version it
    # was computed from (a merge patch without one would have overwritten blindly).
    assert writer.conflicts == 1
    assert seen[-1].get("lastRunNow") == "x"  # recomputed on the re-read status
    assert stored(emulator)["status"] == {"activeCount": 1, "lastRunNow": "x"}


def test_a_newer_object_from_the_informer_beats_the_writers_own_view(
    emulator: Emulator, obj: dict[str, Any], writer: StatusWriter, k8s_api_client: Any
) -> None:
    api = client.CustomObjectsApi(k8s_api_client)
    writer.submit(ref_of(obj), setting(activeCount=0))
    assert writer.flush(5.0)
    newer = patch_status(api, {"lastRunNow": "y"})  # as the watch then delivers it
    seen: list[Mapping[str, Any]] = []

    def build(current: Mapping[str, Any]) -> dict[str, Any]:
        seen.append(dict(current))
        return {**current, "activeCount": 2}

    fresh = ObjectRef(
        "default",
        "a",
        newer["metadata"]["uid"],
        newer["metadata"]["resourceVersion"],
        newer["metadata"]["generation"],
        status=newer["status"],
    )
    writer.submit(fresh, build)
    assert writer.flush(5.0)
    assert writer.conflicts == 0  # computed on the newer view at once: no refused write
    assert seen == [{"activeCount": 0, "lastRunNow": "y"}]
    assert stored(emulator)["status"] == {"activeCount": 2, "lastRunNow": "y"}


def test_server_errors_are_retried(
    emulator: Emulator, obj: dict[str, Any], writer: StatusWriter
) -> None:
    emulator.inject_errors(status=503, times=2)
    writer.submit(ref_of(obj), setting(activeCount=3))
    assert writer.flush(5.0)
    assert stored(emulator)["status"] == {"activeCount": 3}
    assert writer.failures == 0


def test_a_write_failing_longer_than_its_attempts_is_written_once_the_server_answers(
    emulator: Emulator, obj: dict[str, Any], k8s_api_client: Any
) -> None:
    writer = StatusWriter(k8s_api_client, attempts=2, backoff=0.02, max_backoff=0.1)
    writer.start()
    try:
        emulator.outage(status=500)
        writer.submit(ref_of(obj), setting(activeCount=3))
        deadline = time.monotonic() + 10
        while writer.failures < 3 and time.monotonic() < deadline:  # several rounds of attempts
            time.sleep(0.01)
        assert writer.failures >= 3
        assert not writer.flush(0.05)  # still pending: not given up
        emulator.heal()
        assert writer.flush(5.0)
        assert stored(emulator)["status"] == {"activeCount": 3}
    finally:
        emulator.heal()
        writer.stop(timeout=2.0)


def test_deleted_object_is_dropped(
    emulator: Emulator, obj: dict[str, Any], writer: StatusWriter, k8s_api_client: Any
) -> None:
    client.CustomObjectsApi(k8s_api_client).delete_namespaced_custom_object(
        API_GROUP, VERSION, "default", PLURAL, "a"
    )
    writer.submit(ref_of(obj), setting(activeCount=3))
    assert writer.flush(5.0)
    assert writer.failures == 0


def test_a_write_for_an_object_deleted_and_created_again_is_dropped(
    emulator: Emulator, obj: dict[str, Any], writer: StatusWriter, k8s_api_client: Any
) -> None:
    """A status computed for the old object (its reference still queued) must not land on a
    new one with the same name: the conflict's re-read sees another uid, and drops it."""
    api = client.CustomObjectsApi(k8s_api_client)
    api.delete_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, "a")
    body = {k: v for k, v in obj.items() if k != "status"}
    body["metadata"] = {"name": "a", "namespace": "default"}
    api.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, body)
    writer.submit(ref_of(obj), setting(observedGeneration=7, lastRunNow="old-value"))
    assert writer.flush(5.0)
    again = stored(emulator)
    assert again["metadata"]["uid"] != obj["metadata"]["uid"]
    assert "lastRunNow" not in (again.get("status") or {})
    assert writer.writes == 0


def test_token_bucket() -> None:
    now = [0.0]
    bucket = TokenBucket(2.0, 3, clock=lambda: now[0])
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5
    assert bucket.try_take()
    assert not bucket.try_take()


def test_events_are_aggregated(
    emulator: Emulator, obj: dict[str, Any], k8s_api_client: Any
) -> None:
    recorder = EventRecorder(k8s_api_client, qps=100.0)
    recorder.start()
    ref = ref_of(obj)
    try:
        for _ in range(5):
            recorder.emit(ref, EventSpec("Warning", "RunFailed", "run failed: exit code 1"))
        recorder.emit(ref, EventSpec("Warning", "InvalidSpec", "spec is invalid: x"))
        assert recorder.flush(5.0)
    finally:
        recorder.stop()
    events = {e["reason"]: e for e in emulator.objects("events")}
    assert set(events) == {"RunFailed", "InvalidSpec"}
    failed = events["RunFailed"]
    assert failed["count"] == 5
    assert failed["type"] == "Warning"
    assert failed["involvedObject"] == {
        "apiVersion": f"{API_GROUP}/{VERSION}",
        "kind": "CronTask",
        "name": "a",
        "namespace": "default",
        "uid": obj["metadata"]["uid"],
        "resourceVersion": obj["metadata"]["resourceVersion"],
    }
    assert failed["lastTimestamp"] >= failed["firstTimestamp"]
    assert (recorder.created, recorder.patched) == (2, 4)


def test_events_of_one_object_are_rate_limited(
    emulator: Emulator, obj: dict[str, Any], k8s_api_client: Any
) -> None:
    recorder = EventRecorder(k8s_api_client, burst=3, qps=100.0)
    recorder.start()
    try:
        for n in range(10):
            recorder.emit(ref_of(obj), EventSpec("Normal", "SlotSkipped", f"different {n}"))
        assert recorder.flush(5.0)
    finally:
        recorder.stop()
    wait_for("three events", lambda: len(emulator.objects("events")) == 3)
    assert recorder.dropped == 7


def test_the_buckets_of_objects_gone_quiet_do_not_pile_up(
    emulator: Emulator, k8s_api_client: Any
) -> None:
    """One rate-limit bucket per object, deleted ones included, must not be kept for the life
    of the process: a bucket unused until it is full again goes (here after 1 ms)."""
    recorder = EventRecorder(
        k8s_api_client, burst=1, refill_seconds=0.001, qps=1e6, keep_buckets=40
    )
    recorder.start()
    try:
        for index in range(300):
            ref = ObjectRef("default", f"t{index}", f"uid-{index}", "1", 1)
            recorder.emit(ref, EventSpec("Warning", "RunFailed", "run failed: exit code 1"))
        assert recorder.flush(30.0)
    finally:
        recorder.stop()
    assert recorder.created == 300
    assert len(recorder._per_object) <= 41
