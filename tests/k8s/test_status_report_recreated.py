"""A CronTask deleted and created again under the same name while one of its runs is going:
that run (going, then failed) never shows on the new object, nor sends it a RunFailed Event,
whether the new object arrives in the pass that saw the old one go or in a later one. The
reporter, writer and event recorder run in process against the emulator, the source reads it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client

from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.desired import Definition, assemble
from reconciler.core.model import API_GROUP
from reconciler.core.runs import RunRecord, RunStatus, Trigger
from reconciler.sinks.kubernetes import StatusWriter
from reconciler.sinks.kubernetes_events import EventRecorder
from reconciler.sinks.kubernetes_report import StatusReporter
from reconciler.sources.kubernetes import KubernetesSource
from tests.helpers import wait_for
from tests.k8s.emulator import Emulator
from tests.k8s.test_source_kubernetes import crontask

pytestmark = pytest.mark.usefixtures("real_crd")

T0 = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)


class Reporting:
    """The reporter as crontask wires it, with the dispatcher's active runs in a dict: a run
    is active from its start, and let go only after its finished record was heard."""

    def __init__(self, api: Any, source: KubernetesSource) -> None:
        self.source = source
        self.writer = StatusWriter(api, backoff=0.02, max_backoff=0.1)
        self.events = EventRecorder(api, qps=100.0)
        self.active: dict[str, list[RunRecord]] = {}
        self.reporter = StatusReporter(
            self.writer,
            self.events,
            active=lambda key: tuple(self.active.get(key, ())),
            next_run=lambda key, now: None,
            fire_manual=lambda key: None,
            on_loop=lambda callback: callback(),
        )
        self.writer.start()
        self.events.start()

    def stop(self) -> None:
        self.writer.stop(timeout=2.0)
        self.events.stop(timeout=2.0)

    def run_pass(self, also: Iterable[Definition] = (), full: bool = False) -> None:
        """A pass as the runtime makes it: the keys the source says changed, the desired state
        of its definitions and ``also`` (another source's), all of it owned by the scheduler."""
        changed = self.source.refresh(None)
        desired = assemble([*self.source.definitions(), *also], self.source.errors())
        owned = dict(desired.tasks)
        self.reporter.after_pass(self.source.objects(), desired, owned, None if full else changed)

    def start(self, record: RunRecord) -> None:
        self.active.setdefault(record.task, []).append(record)
        self.reporter.on_run(record)

    def finish(self, record: RunRecord) -> None:
        self.reporter.on_run(record)
        self.active[record.task] = [r for r in self.active[record.task] if r.id != record.id]

    def flush(self) -> None:
        assert self.writer.flush(5.0)
        assert self.events.flush(5.0)


@pytest.fixture
def api(k8s_api_client: Any) -> Any:
    return client.CustomObjectsApi(k8s_api_client)


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


def running(run_id: str, task: str, minute: int) -> RunRecord:
    at = T0 + timedelta(minutes=minute)
    return RunRecord(
        run_id, task, at, Trigger.SCHEDULE, RunStatus.RUNNING, started_at=at, owner="h:1:x"
    )


def failed(record: RunRecord) -> RunRecord:
    assert record.started_at is not None
    return record.finish(
        RunStatus.FAILED, finished_at=record.started_at + timedelta(seconds=4), exit_code=3
    )


def stored(emulator: Emulator, name: str) -> dict[str, Any]:
    (found,) = [o for o in emulator.objects("ct") if o["metadata"]["name"] == name]
    return found


def events_of(emulator: Emulator, uid: str) -> list[dict[str, Any]]:
    return [e for e in emulator.objects("events") if e["involvedObject"]["uid"] == uid]


def in_cache(source: KubernetesSource, key: str) -> str | None:
    obj = source.informer.snapshot([key]).get(key)
    return obj["metadata"]["uid"] if obj is not None else None


@pytest.mark.parametrize("passes", ["one pass", "a pass between"])
def test_a_deleted_objects_run_never_shows_on_its_namesake(
    api: Any, emulator: Emulator, source: KubernetesSource, reporting: Reporting, passes: str
) -> None:
    api.create_namespaced_custom_object(
        API_GROUP, VERSION, "default", PLURAL, crontask("fl", schedule="*/10 * * * *")
    )
    assert source.start(5.0)
    reporting.run_pass(full=True)
    old = running("default.fl.1", "default/fl", 0)
    reporting.start(old)
    reporting.flush()
    assert stored(emulator, "fl")["status"]["activeCount"] == 1  # the old object's, on it

    api.delete_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, "fl")
    if passes == "a pass between":
        wait_for("the delete in the cache", lambda: in_cache(source, "default/fl") is None)
        reporting.run_pass()
    created = api.create_namespaced_custom_object(
        API_GROUP, VERSION, "default", PLURAL, crontask("fl", schedule="0 0 1 1 *")
    )
    uid = created["metadata"]["uid"]
    wait_for("the new object in the cache", lambda: in_cache(source, "default/fl") == uid)
    reporting.run_pass()
    reporting.flush()
    during = stored(emulator, "fl")["status"]
    assert (during["activeCount"], during["active"]) == (0, [])
    assert "lastRun" not in during

    reporting.finish(failed(old))  # the deleted object's run fails
    reporting.flush()
    after = stored(emulator, "fl")["status"]
    assert after["activeCount"] == 0
    assert {"lastRun", "lastFailureTime", "lastScheduleTime"}.isdisjoint(after)
    assert events_of(emulator, uid) == []

    # The new object's own runs do show.
    new = running("default.fl.2", "default/fl", 10)
    reporting.start(new)
    reporting.finish(failed(new))
    reporting.flush()
    own = stored(emulator, "fl")["status"]
    assert own["lastRun"]["id"] == "default.fl.2"
    assert [e["reason"] for e in events_of(emulator, uid)] == ["RunFailed"]
