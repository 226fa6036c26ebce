"""The wall clock stepped back (an NTP step, ``date -s``, a virtual machine restored): each job
keeps the slot it waits for, so nothing runs until the clock passes it again (README). The task
list and one task's answer showed the slots of the schedule after the clock, the ones that ran
already among them (``*/10`` seconds listed :30 an hour ago, its last run at :20); they show the
slot the scheduler waits for and those after it, as /metrics does, and the log says once why
nothing runs.

The real adapter, dispatcher (a run is a real command), reconciler, service and API, on a fake
wall clock; the adapter's own loop never runs: the test wakes it at the instants it sets, as
its timer would."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import apscheduler.schedulers.base as aps_base
import pytest
import yaml

import reconciler.controller.service as service_module
import reconciler.scheduling.apscheduler as aps
import reconciler.scheduling.wall_clock as wall_clock
from reconciler.api.app import create_app
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import Reconciler
from reconciler.controller.service import Service
from reconciler.sinks.metrics import Metrics
from reconciler.sources.api import ApiSource, ApiTaskFiles
from reconciler.sources.base import Source
from reconciler.sources.files import DirectorySource
from reconciler.store import MemoryRunStore
from reconciler.store.base import RunQuery
from tests.api.conftest import TestClient
from tests.helpers import local_actions, task_doc

T = TypeVar("T")
KEY = "default/tick"
T0 = datetime(2026, 1, 1, 0, 0, 0, 500_000, tzinfo=UTC)
BACK = timedelta(hours=1)


class _Clock(datetime):
    """``datetime`` for the adapter, APScheduler and the service: ``now()`` is the instant set."""

    at = T0

    @classmethod
    def now(cls, tz: Any = None) -> _Clock:
        return cls.fromtimestamp(cls.at.timestamp(), UTC)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Clock]]:
    for module in (aps, aps_base, service_module):
        monkeypatch.setattr(module, "datetime", _Clock)
    # The monotonic clock, which no step of the wall clock moves, stands still between the
    # wake-ups: how far the clock went back is then exactly the step.
    monkeypatch.setattr(aps, "monotonic", lambda: 1000.0)
    _Clock.at = T0
    yield _Clock
    _Clock.at = T0


def at(seconds: float) -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


class Rig:
    """What ``crontask run`` builds around one folder of tasks, in this process: the service
    and the reconciler on an event loop of their own, the adapter's wake-ups turned by hand."""

    def __init__(self, tasks: Path, state: Path) -> None:
        self.store = MemoryRunStore()
        self.idle = asyncio.new_event_loop()  # the adapter's: never run
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.service = self.on_loop(self._build(tasks, state))

    async def _build(self, tasks: Path, state: Path) -> Service:
        api = ApiSource(ApiTaskFiles(state / "api-tasks"))
        sources: list[Source] = [api, DirectorySource([tasks])]
        self.dispatcher = Dispatcher(
            self.store, owner="h:1:x", clock=lambda: _Clock.at, actions=local_actions()
        )

        def on_fire(key: str, slot: datetime) -> None:  # as crontask run's
            definition = self.scheduler.owned().get(key)
            if definition is not None:
                self.dispatcher.due(definition, slot)

        self.scheduler = aps.ApsScheduler(on_fire)
        self.scheduler._aps._eventloop = self.idle
        self.reconciler = Reconciler(sources, self.scheduler, self.dispatcher, allow_empty=True)
        await self.reconciler.run_pass(None)
        return Service(
            loop=self.loop,
            store=self.store,
            scheduler=self.scheduler,
            dispatcher=self.dispatcher,
            reconciler=self.reconciler,
            reconcile=self.reconciler.run_pass,
            api=api,
            sources=sources,
        )

    def on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def wake(self, now: datetime) -> None:
        """The adapter wakes at ``now``, hands over what is due, and its runs end."""

        async def turn() -> None:
            _Clock.at = now
            self.scheduler._aps._process_jobs()
            assert await self.dispatcher.drain(10)

        self.on_loop(turn())

    def get(self, path: str) -> Any:
        app = create_app(self.service, auth=None, metrics=Metrics(self.scheduler))
        with TestClient(app, raise_server_exceptions=False) as client:
            answer = client.get(path)
        assert answer.status_code == 200, answer.text
        return answer.json() if path.startswith("/api/") else answer.text

    def slots_run(self) -> list[datetime]:
        return sorted(r.scheduled_at for r in self.store.query(RunQuery(task=KEY)).items)

    def stop(self) -> None:
        self.scheduler.shutdown()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.idle.close()


def times(values: list[str]) -> list[datetime]:
    return [datetime.fromisoformat(v) for v in values]


def test_after_the_clock_went_back_the_next_runs_are_the_slots_waited_for(
    tmp_path: Path, clock: type[_Clock], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="crontask.scheduler")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    doc = task_doc("tick", schedule="*/10 * * * * *", concurrencyPolicy="Allow")
    (tasks / "tick.yaml").write_text(yaml.safe_dump(doc))
    rig = Rig(tasks, tmp_path / "state")
    try:
        rig.wake(at(10))
        rig.wake(at(20))
        assert rig.slots_run() == [at(10), at(20)]
        rig.wake(at(21) - BACK)  # the first wake-up after the step back: nothing is due
        rig.wake(at(25) - BACK)  # and the next ones: said once
        waited_for = rig.scheduler.next_fire_time(KEY)
        (listed,) = rig.get("/api/v1/tasks")["items"]
        one = rig.get(f"/api/v1/tasks/{KEY}")
        metrics = rig.get("/metrics")
        rig.wake(at(29))  # the clock has caught up, not yet past :30
        assert rig.slots_run() == [at(10), at(20)]
        rig.wake(at(30))
        ran = rig.slots_run()
    finally:
        rig.stop()

    assert waited_for == at(30)
    assert datetime.fromisoformat(listed["lastRun"]["scheduledTime"]) == at(20)
    assert times(listed["nextRuns"]) == [at(30)]
    assert times(one["nextRuns"]) == [at(30), at(40), at(50), at(60), at(70)]
    # The slot /metrics shows: the one the scheduler waits for, as before this change.
    name = "crontask_task_next_run_timestamp_seconds"
    (line,) = [x for x in metrics.splitlines() if x.startswith(name + "{")]
    assert float(line.rsplit(" ", 1)[1]) == at(30).timestamp()
    assert ran == [at(10), at(20), at(30)]  # the slot listed first is the one that ran next
    said = [r for r in caplog.records if "clock went back" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in said]
    assert said[0].levelno == logging.WARNING
    assert getattr(said[0], "fields", None) == {"seconds": 3599.0, "next": at(30).isoformat()}


def test_a_small_step_back_or_one_forward_is_not_said(
    clock: type[_Clock], caplog: pytest.LogCaptureFixture
) -> None:
    """Under ``CLOCK_BACK_SAID``, a step back delays a slot no more than a wake-up may; a step
    forward (or a host resumed from suspend) makes no slot wait."""
    caplog.set_level(logging.WARNING, logger="crontask.scheduler")
    watch = wall_clock.ClockWatch()
    watch.woke(at(100), 1000.0, at(110))
    watch.woke(at(100 - wall_clock.CLOCK_BACK_SAID), 1000.0, at(110))
    watch.woke(at(4000), 1000.0, at(4000))
    assert [r.getMessage() for r in caplog.records] == []
    watch.woke(at(10), 1000.0, at(4000))  # 3990 s back: said
    assert [getattr(r, "fields", {}).get("seconds") for r in caplog.records] == [3990.0]
