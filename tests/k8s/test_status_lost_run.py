"""A stored ``lastRun`` that says ``running`` of a run the run store does not hold (its crontask
died and its store went with it): shown ``interrupted``, without a failure time nor a duration,
and said in one line for all the tasks of a pass. Not when the store could not answer, nor when
the store holds the run still running, nor when records of this process still wait for the
store (the run's among them, maybe); never for a Job's run (the Job outlives its crontask), nor
with replicas (another's run may wait in its memory while it is cut off from the store): see
tests/k8s/test_status_lost_run_e2e.py for the real process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from reconciler.controller.kube import _run_reader
from reconciler.core.desired import DesiredState
from reconciler.core.runs import RunRecord, RunStatus, Trigger
from reconciler.core.status import ObjectRef
from reconciler.sinks.kubernetes_lost import LOST_MESSAGE
from reconciler.sinks.kubernetes_report import StatusReporter
from reconciler.store.base import StoreUnavailable
from tests.sinks.test_kube_status_after_crash import Writer

T0 = datetime(2026, 12, 6, 16, 21, 14, tzinfo=UTC)
NOW = datetime(2026, 12, 6, 16, 22, 0, tzinfo=UTC)
KEY = "default/k9"
RUNNING = {"id": "r1", "result": "running", "startTime": "2026-12-06T16:21:14Z"}
OTHERS = RunRecord("r1", KEY, T0, Trigger.MANUAL, RunStatus.RUNNING, started_at=T0)


class Scene:
    """A reporter whose reads of the store the test answers, and the status it writes."""

    def __init__(
        self,
        status: dict[str, Any],
        active: tuple[RunRecord, ...] = (),
        *,
        lost_runs: bool = True,
        keys: tuple[str, ...] = (KEY,),
    ) -> None:
        self.status = status
        self.active = active
        self.reads: list[asyncio.Future[RunRecord | None]] = []
        self.reporter = StatusReporter(
            Writer(status),  # type: ignore[arg-type]
            None,
            active=lambda key: self.active,
            next_run=lambda key, now: None,
            fire_manual=lambda key: None,
            on_loop=lambda callback: callback(),
            clock=lambda: NOW,
            read_run=self.read,
            lost_runs=lost_runs,
        )
        self.keys = keys

    def read(self, run_id: str) -> asyncio.Future[RunRecord | None]:
        assert run_id == "r1"
        self.reads.append(asyncio.get_running_loop().create_future())
        return self.reads[-1]

    def full_pass(self) -> None:
        refs = {}
        for key in self.keys:
            namespace, _, name = key.partition("/")
            refs[key] = ObjectRef(namespace, name, f"uid-{name}", "1", 1, None, dict(self.status))
        self.reporter.after_pass(refs, DesiredState({}), {}, None)

    async def answer(self, how: Callable[[asyncio.Future[RunRecord | None]], None]) -> None:
        for read in self.reads:
            if not read.done():
                how(read)
        await asyncio.sleep(0)  # the done callbacks run on the loop


def test_a_run_no_store_holds_shows_interrupted_without_a_failure() -> None:
    async def main() -> None:
        scene = Scene({"lastRun": dict(RUNNING), "lastFailureTime": "2026-12-01T00:00:00Z"})
        scene.full_pass()
        await scene.answer(lambda read: read.set_result(None))
        assert scene.status["lastRun"] == {
            "id": "r1",
            "result": "interrupted",
            "startTime": "2026-12-06T16:21:14Z",
            "completionTime": "2026-12-06T16:22:00Z",
            # No durationMs: the time until it was found missing is no run's duration.
            "message": LOST_MESSAGE,
        }
        # Its outcome is unknown: the failure time stays the last real failure's.
        assert scene.status["lastFailureTime"] == "2026-12-01T00:00:00Z"
        scene.full_pass()  # said: nothing more to read
        assert len(scene.reads) == 1

    asyncio.run(main())


def test_a_job_run_is_left_as_it_is() -> None:
    """Its Job outlives its crontask: it may still run, or have succeeded since."""

    async def main() -> None:
        last = {**RUNNING, "job": {"name": "k9-29000000", "uid": "u-9"}}
        scene = Scene({"lastRun": dict(last)})
        scene.full_pass()
        await scene.answer(lambda read: read.set_result(None))
        assert scene.status["lastRun"] == last

    asyncio.run(main())


def test_with_replicas_nothing_is_marked() -> None:
    """Another replica's run may wait in its memory while it is cut off from the store."""

    async def main() -> None:
        scene = Scene({"lastRun": dict(RUNNING)}, lost_runs=False)
        scene.full_pass()
        await scene.answer(lambda read: read.set_result(None))
        assert scene.status["lastRun"] == RUNNING

    asyncio.run(main())


def test_the_tasks_of_a_pass_are_said_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        keys = tuple(f"default/k{i}" for i in range(7))
        scene = Scene({"lastRun": dict(RUNNING)}, keys=keys)
        scene.full_pass()
        assert len(scene.reads) == 7
        with caplog.at_level(logging.WARNING, logger="crontask.sinks"):
            await scene.answer(lambda read: read.set_result(None))
        assert scene.status["lastRun"]["result"] == "interrupted"
        (line,) = [r for r in caplog.records if "not in the run store" in r.getMessage()]
        assert line.fields == {  # type: ignore[attr-defined]
            "count": 7,
            "tasks": "default/k0,default/k1,default/k2,default/k3,default/k4",
        }

    asyncio.run(main())


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda r: r.set_exception(StoreUnavailable("down")), id="store-down"),
        pytest.param(lambda r: r.set_result(OTHERS), id="running-elsewhere"),
    ],
)
def test_not_when_the_store_did_not_answer_or_holds_it_running(
    answer: Callable[[asyncio.Future[RunRecord | None]], None],
) -> None:
    async def main() -> None:
        scene = Scene({"lastRun": dict(RUNNING)})
        scene.full_pass()
        await scene.answer(answer)
        assert scene.status["lastRun"] == RUNNING
        scene.full_pass()  # read again at the next full pass: it may say more then
        assert len(scene.reads) == 2

    asyncio.run(main())


def test_not_when_the_run_goes_here_by_the_answer() -> None:
    async def main() -> None:
        scene = Scene({"lastRun": dict(RUNNING)})
        scene.full_pass()
        scene.active = (OTHERS,)  # adopted while the store was read
        await scene.answer(lambda read: read.set_result(None))
        assert scene.status["lastRun"] == RUNNING

    asyncio.run(main())


class Recorder:
    """The dispatcher's recorder as the reader uses it: its store, and records waiting."""

    def __init__(self, pending: int) -> None:
        self.pending = pending
        self.store = self

    def get(self, run_id: str) -> RunRecord | None:
        return None

    async def call(self, fn: Callable[..., Any], *args: object) -> Any:
        return fn(*args)


class Dispatcher:
    def __init__(self, pending: int) -> None:
        self.recorder = Recorder(pending)


def test_the_reader_says_absent_only_when_no_record_waits_here() -> None:
    async def main() -> None:
        assert await _run_reader(Dispatcher(0))("r1") is None  # type: ignore[arg-type]
        waiting = _run_reader(Dispatcher(3))("r1")  # type: ignore[arg-type]
        with pytest.raises(StoreUnavailable, match="3 run records wait"):
            await waiting

    asyncio.run(main())
