"""The dispatcher with real commands and the in-memory store: policies, deadlines, claims."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.controller.active import ActiveRun
from reconciler.controller.dispatch import Dispatcher
from reconciler.core.desired import Definition
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import MemoryRunStore
from tests.helpers import definition, local_actions

SLOT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def dispatcher(store: MemoryRunStore, now: datetime = SLOT) -> Dispatcher:
    return Dispatcher(
        store, owner="host:1:abc", clock=lambda: now, actions=local_actions(kill_grace=0.5)
    )


def sh(script: str, **spec: Any) -> Definition:
    return definition("job", command={"args": ["sh", "-c", script]}, **spec)


def test_a_run_is_claimed_executed_and_completed(tmp_path: Path) -> None:
    store = MemoryRunStore()
    out = tmp_path / "env"
    job = sh(f"env > {out}; echo done; exit 3")

    async def scenario() -> None:
        d = dispatcher(store)
        first = d.fire(job, SLOT)
        assert first.status is RunStatus.RUNNING
        assert d.active("default/job") == [first]
        assert await d.drain(10)
        await d.shutdown(0)

    run(scenario())
    record = store.get(run_id("default/job", SLOT))
    assert record is not None
    assert record.status is RunStatus.FAILED
    assert record.exit_code == 3
    assert record.reason == "NonZeroExit"
    assert record.output == "done\n"
    assert record.owner == "host:1:abc"
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert env["CRONTASK_NAME"] == "job"
    assert env["CRONTASK_NAMESPACE"] == "default"
    assert env["CRONTASK_RUN_ID"] == "default.job.20261126T120000Z"
    assert env["CRONTASK_SCHEDULED_TIME"] == "2026-11-26T12:00:00+00:00"
    assert env["CRONTASK_ATTEMPT"] == "1"
    assert env["PATH"] == os.environ["PATH"]


def test_a_finished_run_leaves_no_reference_cycle() -> None:
    """A run and its attempt are freed by reference counting as soon as they end: cycles
    among them (the attempt held the run's start callback, which held the run, which held the
    attempt) were left to the garbage collector, 14 objects a run, and at a thousand runs a
    second that made full collections, which hold the event loop, frequent."""
    store = MemoryRunStore()
    job = sh("exit 1", retry={"limit": 1, "backoffSeconds": 0})
    later = SLOT + timedelta(minutes=1)

    async def scenario() -> None:
        d = dispatcher(store, later)
        d.fire(job, SLOT)
        stopped = d.fire(definition("other", command={"args": ["true"]}), later)
        assert d.stop_run(stopped.id, "a test")  # before its process started
        assert await d.drain(10)
        await d.shutdown(0)

    gc.collect()
    flags = gc.get_debug()
    gc.set_debug(flags | gc.DEBUG_SAVEALL)  # what a collection finds is kept in gc.garbage
    try:
        run(scenario())
        gc.collect()
        left = {type(o).__name__ for o in gc.garbage} & {"ActiveRun", "CommandRun", "RunRecord"}
    finally:
        gc.set_debug(flags)
        gc.garbage.clear()
    assert [r.attempt for r in store.attempts(run_id("default/job", SLOT))] == [1, 2]
    never = store.get(run_id("default/other", later))
    assert never is not None
    assert never.started_at is None
    assert left == set()


def test_the_log_says_why_a_run_did_not_succeed(caplog: pytest.LogCaptureFixture) -> None:
    """Not only the run history: an operator reading the log sees the reason and crontask's
    message for a run that failed (nothing more for one that succeeded)."""
    store = MemoryRunStore()

    async def scenario() -> None:
        d = dispatcher(store)
        d.fire(sh("exit 3"), SLOT)
        d.fire(definition("ok", command={"args": ["true"]}), SLOT)
        assert await d.drain(10)
        await d.shutdown(0)

    with caplog.at_level(logging.INFO, logger="crontask.runner"):
        run(scenario())
    finished = {
        r.fields["task"]: r.fields  # type: ignore[attr-defined]
        for r in caplog.records
        if r.getMessage() == "run finished"
    }
    assert finished["default/job"]["reason"] == "NonZeroExit"
    assert finished["default/job"]["message"] == "exited with status 3"
    assert "reason" not in finished["default/ok"]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        # The first run is still going at the end; shutdown stops it (interrupted).
        ("Forbid", [(RunStatus.INTERRUPTED, "Shutdown"), (RunStatus.SKIPPED, "ConcurrencyForbid")]),
        ("Replace", [(RunStatus.FAILED, "Replaced"), (RunStatus.SUCCEEDED, None)]),
        ("Allow", [(RunStatus.SUCCEEDED, None), (RunStatus.SUCCEEDED, None)]),
    ],
)
def test_concurrency_policies(
    tmp_path: Path, policy: str, expected: list[tuple[RunStatus, str | None]]
) -> None:
    store = MemoryRunStore()
    gate, started = tmp_path / "gate", tmp_path / "started"
    # The first run waits for the gate file; the second finds it at once.
    job = sh(
        f'if [ "$CRONTASK_RUN_ID" = "{run_id("default/job", SLOT)}" ]; then touch {started}; '
        f"while [ ! -e {gate} ]; do sleep 0.05; done; fi",
        concurrencyPolicy=policy,
    )

    async def scenario() -> None:
        d = dispatcher(store)
        d.fire(job, SLOT)
        # The second comes while the first runs (replaced before it began, a run is skipped).
        for _ in range(1000):
            if started.exists():
                break
            await asyncio.sleep(0.01)
        second = d.fire(job, SLOT + timedelta(minutes=1))
        if policy == "Forbid":
            assert second.status is RunStatus.SKIPPED
            assert await d.drain(0.5) is False  # the first one is still going
            await d.shutdown(0)
            return
        if policy == "Allow":
            gate.touch()
        assert await d.drain(10)
        await d.shutdown(0)

    run(scenario())
    got = [store.get(run_id("default/job", at)) for at in (SLOT, SLOT + timedelta(minutes=1))]
    assert [(r.status, r.reason) for r in got if r is not None] == expected


def test_missed_deadline_is_recorded_not_run(tmp_path: Path) -> None:
    store = MemoryRunStore()
    marker = tmp_path / "ran"
    job = sh(f"touch {marker}", startingDeadlineSeconds=30)

    async def scenario() -> None:
        d = dispatcher(store, now=SLOT + timedelta(seconds=31))
        record = d.fire(job, SLOT)
        assert record.status is RunStatus.SKIPPED
        assert await d.drain(5)
        await d.shutdown(0)

    run(scenario())
    record = store.get(run_id("default/job", SLOT))
    assert record is not None
    assert (record.status, record.reason) == (RunStatus.SKIPPED, "MissedDeadline")
    assert "startingDeadlineSeconds=30" in (record.message or "")
    assert not marker.exists()


def test_manual_runs_ignore_the_deadline(tmp_path: Path) -> None:
    store = MemoryRunStore()
    job = sh("true", startingDeadlineSeconds=1)

    async def scenario() -> None:
        d = dispatcher(store, now=SLOT + timedelta(seconds=5))
        d.fire(job, SLOT, Trigger.MANUAL)
        assert await d.drain(5)
        await d.shutdown(0)

    run(scenario())
    record = store.get(run_id("default/job", SLOT))
    assert record is not None
    assert (record.status, record.trigger) == (RunStatus.SUCCEEDED, Trigger.MANUAL)


def test_a_slot_claimed_elsewhere_does_not_run(tmp_path: Path) -> None:
    store = MemoryRunStore()
    marker = tmp_path / "ran"
    job = sh(f"touch {marker}")
    other = RunRecord(
        id=run_id("default/job", SLOT),
        task="default/job",
        scheduled_at=SLOT,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.RUNNING,
        started_at=SLOT,
        owner="other-host:7:xyz",
    )
    store.claim(other)

    async def scenario() -> None:
        d = dispatcher(store)
        d.fire(job, SLOT)
        assert await d.drain(5)
        await d.shutdown(0)

    run(scenario())
    assert not marker.exists()
    assert store.get(other.id) == other


def test_a_slot_fired_again_while_it_runs_here_is_that_run(tmp_path: Path) -> None:
    store = MemoryRunStore()
    started = tmp_path / "started"
    job = sh(f"touch {started}; sleep 60", concurrencyPolicy="Allow")

    async def scenario() -> None:
        d = dispatcher(store)
        first = d.fire(job, SLOT, Trigger.MANUAL)
        while not started.exists():  # the first run's process is going
            await asyncio.sleep(0.01)
        again = d.fire(job, SLOT, Trigger.MANUAL)  # two manual runs asked in one instant
        assert again == first
        assert await d.drain(0.2) is False
        assert d.active("default/job") == [first]
        await d.shutdown(0)  # stops the run: it is still followed here

    run(scenario())
    record = store.get(run_id("default/job", SLOT))
    assert record is not None
    assert (record.status, record.reason) == (RunStatus.INTERRUPTED, "Shutdown")


def test_a_run_stopped_before_or_while_it_waits_for_a_retry_stops_waiting() -> None:
    record = RunRecord(
        id=run_id("default/job", SLOT),
        task="default/job",
        scheduled_at=SLOT,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.RUNNING,
    )

    async def scenario() -> None:
        quiet = ActiveRun(record)
        assert await quiet.wait_stopped(0.01) is False  # nobody stopped it: the wait ran out

        early = ActiveRun(record)
        early.stop("Replaced")
        assert await early.wait_stopped(3600) is True  # at once: it was stopped before

        waiting = ActiveRun(record)
        wait = asyncio.get_running_loop().create_task(waiting.wait_stopped(3600))
        await asyncio.sleep(0)  # the wait has begun
        waiting.stop("Shutdown")
        waiting.stop("Replaced")  # the first reason stands
        assert await asyncio.wait_for(wait, 5) is True
        assert waiting.stop_reason == "Shutdown"

    run(scenario())
