"""After a crash, with replicas: the runs the dead crontask left ``running`` are marked
``interrupted`` (``ProcessDied``) by the replica that finds them dead, in the run store,
without any dispatcher, and are not handed to a notifier (``crashes_told`` False; a crontask on
its own hands them over: ``test_notify_crashed_runs``). A task whose failures since its last
success are only those was never announced as failing: its next success is no recovery, and its
next failure is the first ``failed`` the receivers get. A failure a notifier did see before
keeps the usual rule (it may have been told: ``recovered``, or ``failed`` again as a
reminder)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.controller.wiring import _recent_runs
from reconciler.core.desired import DesiredState
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from reconciler.sinks.notify_config import parse
from reconciler.store import MemoryRunStore

T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
KEY = "default/t"
DEAD = "host:4242:dead"  # the crontask that crashed
ROUTES = "routes:\n  - receiver: hook\n    events: [failed, recovered]\n"


def attempt(
    status: RunStatus, at: datetime, *, attempt: int = 1, reason: str | None = None
) -> RunRecord:
    ended = status is not RunStatus.RUNNING
    return RunRecord(
        id=run_id(KEY, at),
        task=KEY,
        scheduled_at=at,
        trigger=Trigger.SCHEDULE if attempt == 1 else Trigger.RETRY,
        status=status,
        attempt=attempt,
        started_at=at + timedelta(seconds=attempt),
        finished_at=at + timedelta(seconds=attempt, milliseconds=500) if ended else None,
        exit_code=None if status in (RunStatus.RUNNING, RunStatus.SUCCEEDED) else 1,
        reason=reason,
        owner=DEAD,
    )


def crashed(store: MemoryRunStore, *records: RunRecord) -> datetime:
    """``records`` as the dead crontask left them, then marked as the start-up after the crash
    marks them; returns when."""
    for record in records:
        store.claim(record)
    recovered_at = T0 - timedelta(minutes=1)
    assert store.mark_interrupted({DEAD}, recovered_at)
    return recovered_at


def after_the_crash(
    tmp_path: Path,
    store: MemoryRunStore,
    outcomes: Sequence[RunStatus],
    desired: DesiredState | None = None,
) -> list[dict[str, Any]]:
    """The messages sent when, in the crontask started after the crash, runs end with
    ``outcomes`` (the notifier reads the task's history from ``store``, as ``serve`` wires
    it)."""
    (tmp_path / "url").write_text("http://hook.invalid/\n")
    text = "receivers:\n  - name: hook\n    type: generic\n    urlFile: url\n" + ROUTES
    sent: list[dict[str, Any]] = []

    def receive(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(204)

    notifier = Notifier(
        parse(text, "n.yaml", tmp_path),
        metrics=Metrics(),
        history=lambda key: _recent_runs(store, key),
        transport=httpx.MockTransport(receive),
    )

    async def main() -> None:
        stop, ready = asyncio.Event(), asyncio.Event()
        component = asyncio.create_task(notifier.run(ready.set, stop))
        await asyncio.wait_for(ready.wait(), 5)
        if desired is not None:  # the first pass of the crontask started after the crash
            notifier.after_pass(desired)
        for minute, outcome in enumerate(outcomes):
            record = attempt(outcome, T0 + timedelta(minutes=minute))
            notifier.on_run(dataclasses.replace(record, owner="host:1:new"))
        while notifier.considered < len(outcomes):
            await asyncio.sleep(0.005)
        stop.set()  # delivers what is queued
        await asyncio.wait_for(component, 20)

    asyncio.run(main())
    return sent


@pytest.mark.parametrize("crash", ["first-attempt", "retry"])
def test_a_task_whose_only_failure_is_a_crash_does_not_recover_without_having_failed(
    tmp_path: Path, crash: str
) -> None:
    store = MemoryRunStore()
    store.claim(attempt(RunStatus.SUCCEEDED, T0 - timedelta(hours=2)))
    slot = T0 - timedelta(hours=1)
    if crash == "retry":  # attempt 1 failed, its retry ran when crontask died
        crashed(
            store,
            attempt(RunStatus.FAILED, slot, reason="NonZeroExit"),
            attempt(RunStatus.RUNNING, slot, attempt=2),
        )
    else:
        crashed(store, attempt(RunStatus.RUNNING, slot))
    assert after_the_crash(tmp_path, store, [RunStatus.SUCCEEDED]) == []


def test_after_a_crash_the_next_failure_is_the_first_failed_message(tmp_path: Path) -> None:
    store = MemoryRunStore()
    recovered_at = crashed(store, attempt(RunStatus.RUNNING, T0 - timedelta(hours=1)))
    sent = after_the_crash(tmp_path, store, [RunStatus.FAILED, RunStatus.SUCCEEDED])
    assert [(m["event"], m["reminder"]) for m in sent] == [("failed", False), ("recovered", False)]
    # Failing since the crash interrupted its run, as the metrics count it.
    assert sent[0]["failingSince"] == recovered_at.isoformat()


def test_a_failure_a_notifier_saw_before_the_crash_still_recovers(tmp_path: Path) -> None:
    """The run before the crashed one failed while crontask lived: its "failed" may have been
    sent, so the next success says "recovered" (at least once, as after any restart)."""
    store = MemoryRunStore()
    store.claim(attempt(RunStatus.FAILED, T0 - timedelta(hours=2), reason="NonZeroExit"))
    crashed(store, attempt(RunStatus.RUNNING, T0 - timedelta(hours=1)))
    sent = after_the_crash(tmp_path, store, [RunStatus.SUCCEEDED])
    assert [m["event"] for m in sent] == ["recovered"]
