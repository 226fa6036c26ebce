"""A crontask on its own hands the runs its predecessor's crash cut short (found when it
starts, ``instance.recover``) to the notifier: each counts as a run that ended, once the first
pass has said which definitions are in force. With replicas they are not handed over
(``crashes_told`` False: the rule of ``test_notify_crash``)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.controller.wiring import _recent_runs
from reconciler.core.desired import DesiredState
from reconciler.core.runs import PROCESS_DIED, UNTOLD, RunRecord, RunStatus
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import INTAKE_MAX, Notifier
from reconciler.sinks.notify_config import parse
from reconciler.store import MemoryRunStore
from tests.helpers import definition
from tests.notify.test_notify_crash import DEAD, T0, attempt

RECEIVER = "receivers:\n  - name: hook\n    type: generic\n    urlFile: url\n"


def restarted(
    tmp_path: Path,
    store: MemoryRunStore,
    outcomes: Sequence[RunStatus],
    *,
    crashes_told: bool = True,
    match: str = "",
    untold: bool = False,
) -> list[dict[str, Any]]:
    """The messages sent by the crontask started after the crash: it recovers the crashed
    runs, hands them to its notifier, makes its first pass, then runs end with ``outcomes``."""
    (tmp_path / "url").write_text("http://hook.invalid/\n")
    routes = f"routes:\n  - receiver: hook\n    events: [failed, recovered]\n{match}"
    sent: list[dict[str, Any]] = []

    def receive(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(204)

    notifier = Notifier(
        parse(RECEIVER + routes, "n.yaml", tmp_path),
        metrics=Metrics(),
        history=lambda key: _recent_runs(store, key),
        transport=httpx.MockTransport(receive),
        crashes_told=crashes_told,
    )
    if untold:  # marked by a crontask that does not declare the task, which told nobody
        store.mark_interrupted({DEAD}, T0 - timedelta(minutes=1), note=UNTOLD)
        found = []
    else:
        found = store.mark_interrupted({DEAD}, T0 - timedelta(minutes=1))

    async def main() -> None:
        stop, ready = asyncio.Event(), asyncio.Event()
        component = asyncio.create_task(notifier.run(ready.set, stop))
        await asyncio.wait_for(ready.wait(), 5)
        notifier.crashed(found)
        await asyncio.sleep(0)  # the component would look now, if anything were in
        # Nothing is considered before the first pass: routes match on the definitions.
        assert notifier.considered == 0
        task = definition("t")
        notifier.after_pass(DesiredState({task.key: task}))
        expected = (len(found) if crashes_told else 0) + len(outcomes)
        for minute, outcome in enumerate(outcomes):
            record = attempt(outcome, T0 + timedelta(minutes=minute))
            notifier.on_run(dataclasses.replace(record, owner="host:1:new"))
        while notifier.considered < expected:
            await asyncio.sleep(0.005)
        stop.set()  # delivers what is queued
        await asyncio.wait_for(component, 20)

    asyncio.run(main())
    return sent


def crashed_during(store: MemoryRunStore, *records: RunRecord) -> None:
    store.claim(attempt(RunStatus.SUCCEEDED, T0 - timedelta(hours=2)))
    for record in records:
        store.claim(record)


def test_a_run_a_crash_cut_short_is_failed_then_recovered(tmp_path: Path) -> None:
    store = MemoryRunStore()
    crashed_during(store, attempt(RunStatus.RUNNING, T0 - timedelta(hours=1)))
    sent = restarted(tmp_path, store, [RunStatus.SUCCEEDED])
    assert [(m["event"], m["reminder"]) for m in sent] == [("failed", False), ("recovered", False)]
    run = sent[0]["run"]
    assert (run["status"], run["reason"]) == ("interrupted", PROCESS_DIED)
    assert sent[0]["task"]["source"]["kind"] == "file"  # the definition in force (first pass)


def test_a_retry_a_crash_cut_short_ends_its_run(tmp_path: Path) -> None:
    store = MemoryRunStore()
    slot = T0 - timedelta(hours=1)
    crashed_during(
        store,
        attempt(RunStatus.FAILED, slot, reason="NonZeroExit"),
        attempt(RunStatus.RUNNING, slot, attempt=2),
    )
    sent = restarted(tmp_path, store, [])
    assert [(m["event"], m["run"]["attempt"]) for m in sent] == [("failed", 2)]


def test_routes_match_on_the_definition_in_force(tmp_path: Path) -> None:
    store = MemoryRunStore()
    crashed_during(store, attempt(RunStatus.RUNNING, T0 - timedelta(hours=1)))
    by_git = restarted(tmp_path, store, [], match="    match: {source: git}\n")
    assert by_git == []
    store = MemoryRunStore()
    crashed_during(store, attempt(RunStatus.RUNNING, T0 - timedelta(hours=1)))
    by_file = restarted(tmp_path, store, [], match="    match: {source: file}\n")
    assert [m["event"] for m in by_file] == ["failed"]


def test_with_replicas_they_are_not_handed_over(tmp_path: Path) -> None:
    store = MemoryRunStore()
    crashed_during(store, attempt(RunStatus.RUNNING, T0 - timedelta(hours=1)))
    # Never told: the next success is no recovery (test_notify_crash has the rest of the rule).
    assert restarted(tmp_path, store, [RunStatus.SUCCEEDED], crashes_told=False) == []


def test_a_crash_told_before_a_second_restart_still_recovers(tmp_path: Path) -> None:
    """Told at the first restart, the failure is remembered as told by the next one."""
    store = MemoryRunStore()
    crashed_during(store, attempt(RunStatus.RUNNING, T0 - timedelta(hours=1)))
    assert [m["event"] for m in restarted(tmp_path, store, [])] == ["failed"]
    again = restarted(tmp_path, store, [RunStatus.SUCCEEDED])
    assert [(m["event"], m["reminder"]) for m in again] == [("recovered", False)]


@pytest.mark.parametrize("extra", [0, 5])
def test_what_waits_for_the_first_pass_is_bounded(extra: int) -> None:
    notifier = Notifier(
        parse(
            RECEIVER.replace("urlFile: url", "url: http://h.invalid/")
            + ("routes:\n  - receiver: hook\n    events: [failed]\n"),
            "n.yaml",
            Path("/"),
        ),
        metrics=Metrics(),
        crashes_told=True,
    )
    record = attempt(RunStatus.INTERRUPTED, T0, reason=PROCESS_DIED)
    notifier.crashed([record] * (INTAKE_MAX + extra))
    assert len(notifier._crashed) == INTAKE_MAX
    assert notifier._shed == extra


def test_a_crash_another_crontask_found_and_told_nobody_of_is_no_told_failure(
    tmp_path: Path,
) -> None:
    """Its record says so (``controller.heartbeat``): the next success is no recovery."""
    store = MemoryRunStore()
    crashed_during(store, attempt(RunStatus.RUNNING, T0 - timedelta(hours=1)))
    assert restarted(tmp_path, store, [RunStatus.SUCCEEDED], untold=True) == []


def test_crashes_still_waiting_for_a_first_pass_are_told_at_the_stop(tmp_path: Path) -> None:
    """Marked once, never found again: a stop before any pass worked still tells them."""
    store = MemoryRunStore()
    crashed_during(store, attempt(RunStatus.RUNNING, T0 - timedelta(hours=1)))
    found = store.mark_interrupted({DEAD}, T0 - timedelta(minutes=1))
    (tmp_path / "url").write_text("http://hook.invalid/\n")
    sent: list[dict[str, Any]] = []

    def receive(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(204)

    routes = "routes:\n  - receiver: hook\n    events: [failed]\n"
    notifier = Notifier(
        parse(RECEIVER + routes, "n.yaml", tmp_path),
        metrics=Metrics(),
        history=lambda key: _recent_runs(store, key),
        transport=httpx.MockTransport(receive),
        crashes_told=True,
    )

    async def main() -> None:
        stop, ready = asyncio.Event(), asyncio.Event()
        component = asyncio.create_task(notifier.run(ready.set, stop))
        await asyncio.wait_for(ready.wait(), 5)
        notifier.crashed(found)
        stop.set()
        await asyncio.wait_for(component, 20)

    asyncio.run(main())
    assert [(m["event"], m["run"]["reason"]) for m in sent] == [("failed", PROCESS_DIED)]


@pytest.mark.parametrize("first_pass", [False, True], ids=["left-for-the-stop", "under-way"])
def test_a_store_that_hangs_at_the_stop_holds_it_for_the_deadline_only(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    first_pass: bool,
) -> None:
    """Each crashed run (up to 10 000) reads its task's runs when it is looked at: with a store
    that does not answer, the stop would wait for one read per task, whether the runs waited
    for the stop (no first pass) or were being looked at when it came (the first pass handed
    them on; so are the last runs' records)."""
    monkeypatch.setattr("reconciler.sinks.notify.SHUTDOWN_SECONDS", 0.2)
    reading, released = threading.Event(), threading.Event()

    def hanging(key: str) -> list[RunRecord]:
        reading.set()
        released.wait(60)
        return []

    notifier = Notifier(
        parse(
            RECEIVER.replace("urlFile: url", "url: http://h.invalid/")
            + "routes:\n  - receiver: hook\n    events: [failed]\n",
            "n.yaml",
            tmp_path,
        ),
        metrics=Metrics(),
        history=hanging,
        crashes_told=True,
    )
    tasks = [definition(name) for name in ("a", "b", "c")]
    crashed = [
        dataclasses.replace(attempt(RunStatus.INTERRUPTED, T0, reason=PROCESS_DIED), task=t.key)
        for t in tasks
    ]

    async def main() -> None:
        stop, ready = asyncio.Event(), asyncio.Event()
        component = asyncio.create_task(notifier.run(ready.set, stop))
        await asyncio.wait_for(ready.wait(), 5)
        notifier.crashed(crashed)
        if first_pass:
            notifier.after_pass(DesiredState({t.key: t for t in tasks}))
            await asyncio.to_thread(reading.wait, 10)  # the first read hangs
        stop.set()
        try:
            await asyncio.wait_for(component, 20)
        finally:
            released.set()

    with caplog.at_level(logging.WARNING, logger="crontask"):
        asyncio.run(main())
    assert notifier.considered == 0
    [line] = [r for r in caplog.records if "stopped before every run" in r.getMessage()]
    assert line.fields == {"skipped": 3}  # type: ignore[attr-defined]


def test_a_crash_taken_over_after_a_later_run_ended_tells_nothing(tmp_path: Path) -> None:
    """A pod recreated after its node was lost runs its task's catch-up at its first pass,
    and takes the crashed run over at its heartbeat's next look: a 'failed' for the crash
    then would say that a task whose last run succeeded is failing, until its next success."""
    store = MemoryRunStore()
    crashed_during(store, attempt(RunStatus.RUNNING, T0 - timedelta(hours=1)))
    store.mark_interrupted({DEAD}, T0 - timedelta(minutes=50), note=UNTOLD)
    (tmp_path / "url").write_text("http://hook.invalid/\n")
    sent: list[dict[str, Any]] = []

    def receive(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(204)

    routes = "routes:\n  - receiver: hook\n    events: [failed, recovered]\n"
    notifier = Notifier(
        parse(RECEIVER + routes, "n.yaml", tmp_path),
        metrics=Metrics(),
        history=lambda key: _recent_runs(store, key),
        transport=httpx.MockTransport(receive),
        crashes_told=True,
    )
    catch_up = dataclasses.replace(attempt(RunStatus.SUCCEEDED, T0), owner="host:1:new")
    store.claim(catch_up)

    async def main() -> None:
        stop, ready = asyncio.Event(), asyncio.Event()
        component = asyncio.create_task(notifier.run(ready.set, stop))
        await asyncio.wait_for(ready.wait(), 5)
        task = definition("t")
        notifier.after_pass(DesiredState({task.key: task}))
        notifier.on_run(catch_up)
        while notifier.considered < 1:
            await asyncio.sleep(0.005)
        [taken] = store.take_untold([r.id for r in store.untold(T0 - timedelta(hours=2))])
        notifier.crashed([taken])
        while notifier.considered < 2:
            await asyncio.sleep(0.005)
        stop.set()
        await asyncio.wait_for(component, 20)

    asyncio.run(main())
    assert sent == []
