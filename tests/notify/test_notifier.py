"""The notifier against a real HTTP receiver on 127.0.0.1: what is sent, when, and how."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.controller.wiring import _recent_runs
from reconciler.core.desired import DefinitionError, DesiredState, Location, assemble
from reconciler.core.runs import RetriedAttempt, RunRecord, RunStatus, Trigger, run_id
from reconciler.core.status import SHUTDOWN_REASON
from reconciler.sinks import notify
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from reconciler.sinks.notify_config import parse
from reconciler.store import MemoryRunStore
from tests.helpers import definition, free_port
from tests.notify.receiver import Receiver, receiving

SECRET = b"a-shared-secret-of-some-length"
T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
DEFAULT_ROUTE = "  - receiver: hook\n    events: [failed, recovered]\n"


def config(tmp_path: Path, url: str, *, kind: str = "generic-hmac", route: str = "") -> Any:
    (tmp_path / "secret").write_bytes(SECRET + b"\n")
    (tmp_path / "url").write_text(url + "\n")
    secret = "    secretFile: secret\n" if kind == "generic-hmac" else ""
    routes = route or DEFAULT_ROUTE
    text = (
        f"receivers:\n  - name: hook\n    type: {kind}\n    urlFile: url\n{secret}routes:\n{routes}"
    )
    return parse(text, str(tmp_path / "n.yaml"), tmp_path)


def finished(
    status: RunStatus,
    at: datetime,
    *,
    key: str = "default/t",
    attempt: int = 1,
    output: str = "",
    reason: str | None = None,
) -> RunRecord:
    return RunRecord(
        id=run_id(key, at),
        task=key,
        scheduled_at=at,
        trigger=Trigger.SCHEDULE,
        status=status,
        attempt=attempt,
        started_at=at,
        finished_at=at + timedelta(seconds=1),
        exit_code=0 if status is RunStatus.SUCCEEDED else 1,
        reason=reason,
        output=output,
    )


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def running(notifier: Notifier, body: Callable[[], Awaitable[None]]) -> None:
    """Run ``notifier``'s component around ``body``, then stop it."""

    async def scenario() -> None:
        stop = asyncio.Event()
        ready = asyncio.Event()
        component = asyncio.create_task(notifier.run(ready.set, stop))
        await asyncio.wait_for(ready.wait(), 5)
        try:
            await body()
        finally:
            stop.set()
            await asyncio.wait_for(component, 20)

    asyncio.run(scenario())


async def until(receiver: Receiver, count: int) -> None:
    await asyncio.to_thread(receiver.wait_for, count)


def counts(metrics: Metrics) -> dict[str, int]:
    text = metrics.render()[0].decode()
    found = {}
    for line in text.splitlines():
        if line.startswith("crontask_notifications_total{"):
            labels, value = line.rsplit(" ", 1)
            found[labels.split('result="')[1].rstrip('"}')] = int(value)
    return found


def test_a_task_failing_every_run_sends_one_message_then_recovered(tmp_path: Path) -> None:
    metrics = Metrics()
    with receiving(SECRET) as receiver:
        notifier = Notifier(config(tmp_path, receiver.url), metrics=metrics, page_url="http://x:1")
        notifier.after_pass(DesiredState({"default/t": definition()}))

        async def body() -> None:
            for minute in range(4):
                notifier.on_run(finished(RunStatus.FAILED, T0 + timedelta(minutes=minute)))
            notifier.on_run(finished(RunStatus.SUCCEEDED, T0 + timedelta(minutes=4)))
            notifier.on_run(finished(RunStatus.SUCCEEDED, T0 + timedelta(minutes=5)))
            await until(receiver, 2)

        running(notifier, body)
    assert receiver.events() == ["failed", "recovered"]
    assert all(r.signed_correctly for r in receiver.received)
    failed = receiver.received[0].json
    assert failed["version"] == 1
    assert failed["task"] == {
        "key": "default/t",
        "namespace": "default",
        "name": "t",
        "source": {"kind": "file", "location": "a.yaml:1:1"},
    }
    assert failed["run"]["id"] == run_id("default/t", T0)
    assert failed["run"]["exitCode"] == 1
    assert failed["run"]["url"] == f"http://x:1/runs/{run_id('default/t', T0)}"
    # Failing since the first failed run ended (what a restart reads back), not since the
    # moment the notifier looked at it.
    assert (
        failed["failingSince"]
        == failed["run"]["finishedAt"]
        == (T0 + timedelta(seconds=1)).isoformat()
    )
    assert counts(metrics) == {"dropped": 0, "failed": 0, "sent": 2}


def test_every_failure_and_the_output_tail(tmp_path: Path) -> None:
    route = "  - receiver: hook\n    events: [everyFailure]\n"
    with receiving(SECRET) as receiver:
        notifier = Notifier(config(tmp_path, receiver.url, route=route), metrics=Metrics())

        async def body() -> None:
            for minute in range(3):
                at = T0 + timedelta(minutes=minute)
                notifier.on_run(finished(RunStatus.FAILED, at, output="x" * 100_000 + "END"))
            await until(receiver, 3)

        running(notifier, body)
    assert receiver.events() == ["everyFailure"] * 3
    tail = receiver.received[0].json["run"]["outputTail"]
    assert len(tail) == 2048
    assert tail.endswith("END")


def test_a_run_with_a_retry_left_has_not_ended(tmp_path: Path) -> None:
    route = "  - receiver: hook\n    events: [failed, everyFailure]\n"
    with receiving(SECRET) as receiver:
        notifier = Notifier(config(tmp_path, receiver.url, route=route), metrics=Metrics())
        notifier.after_pass(DesiredState({"default/t": definition(retry={"limit": 1})}))

        async def body() -> None:
            # The dispatcher says which attempts it retries.
            notifier.on_run(RetriedAttempt.of(finished(RunStatus.FAILED, T0, attempt=1)))
            notifier.on_run(finished(RunStatus.SUCCEEDED, T0, attempt=2))
            later = T0 + timedelta(minutes=1)
            notifier.on_run(RetriedAttempt.of(finished(RunStatus.TIMED_OUT, later, attempt=1)))
            notifier.on_run(finished(RunStatus.FAILED, later, attempt=2))
            await until(receiver, 2)

        running(notifier, body)
    assert sorted(receiver.events()) == ["everyFailure", "failed"]
    assert {r.json["run"]["attempt"] for r in receiver.received} == {2}


def test_a_retry_that_will_not_happen_ends_its_run_with_the_failure_before_it(
    tmp_path: Path,
) -> None:
    """Replace (or a change of the task) abandons a waiting retry: its run ended with the
    failed attempt before it. A task failing every slot this way must still be notified."""
    route = "  - receiver: hook\n    events: [failed, everyFailure]\n"
    with receiving(SECRET) as receiver:
        notifier = Notifier(config(tmp_path, receiver.url, route=route), metrics=Metrics())
        notifier.after_pass(DesiredState({"default/t": definition(retry={"limit": 3})}))

        async def body() -> None:
            for minute in range(2):
                at = T0 + timedelta(minutes=minute)
                notifier.on_run(RetriedAttempt.of(finished(RunStatus.FAILED, at, output="boom")))
                abandoned = finished(RunStatus.SKIPPED, at, attempt=2, reason="Replaced")
                notifier.on_run(dataclasses.replace(abandoned, trigger=Trigger.RETRY))
            await until(receiver, 3)

        running(notifier, body)
    assert sorted(receiver.events()) == ["everyFailure", "everyFailure", "failed"]
    assert {(r.json["run"]["attempt"], r.json["run"]["status"]) for r in receiver.received} == {
        (1, "failed")
    }
    assert receiver.received[0].json["run"]["outputTail"] == "boom"


def test_skips_and_shutdown_interruptions_count_for_nothing(tmp_path: Path) -> None:
    with receiving(SECRET) as receiver:
        notifier = Notifier(config(tmp_path, receiver.url), metrics=Metrics())

        async def body() -> None:
            notifier.on_run(finished(RunStatus.SKIPPED, T0, reason="ConcurrencyForbid"))
            at = T0 + timedelta(minutes=1)
            notifier.on_run(finished(RunStatus.INTERRUPTED, at, reason="Shutdown"))
            notifier.on_run(finished(RunStatus.FAILED, T0 + timedelta(minutes=2)))
            await until(receiver, 1)

        running(notifier, body)
    assert receiver.events() == ["failed"]
    assert receiver.received[0].json["run"]["id"] == run_id("default/t", T0 + timedelta(minutes=2))


def test_the_state_survives_a_restart_through_the_history(tmp_path: Path) -> None:
    """Failing before the restart: whether its "failed" reached the receiver is not known (it
    may have been queued when the process stopped), so the next failure says it again, once,
    as a reminder of a failure that began before the restart."""
    before = [finished(RunStatus.FAILED, T0 - timedelta(minutes=1))]

    def history(key: str) -> Sequence[RunRecord]:
        return before

    with receiving(SECRET) as receiver:
        notifier = Notifier(config(tmp_path, receiver.url), metrics=Metrics(), history=history)

        async def body() -> None:
            notifier.on_run(finished(RunStatus.FAILED, T0))
            notifier.on_run(finished(RunStatus.FAILED, T0 + timedelta(minutes=1)))  # nothing new
            notifier.on_run(finished(RunStatus.SUCCEEDED, T0 + timedelta(minutes=2)))
            await until(receiver, 2)

        running(notifier, body)
    assert receiver.events() == ["failed", "recovered"]
    since = (T0 - timedelta(seconds=59)).isoformat()
    assert [r.json["failingSince"] for r in receiver.received] == [since, since]
    assert [r.json["reminder"] for r in receiver.received] == [True, False]
    assert receiver.received[0].json["run"]["id"] == run_id("default/t", T0)


def test_a_failing_task_that_comes_back_from_another_replica_says_so_again(
    tmp_path: Path,
) -> None:
    """Its owner meanwhile may have been stopped with the message still queued: as after a
    restart, its next failure here sends "failed" again, even without repeatInterval."""
    owned = {"default/t"}
    history: list[RunRecord] = []
    route = "  - receiver: hook\n    events: [failed]\n    repeatInterval: 1d\n"
    clock = Clock()
    clock.now = T0 + timedelta(minutes=5)  # a day has not passed since it began failing
    with receiving(SECRET) as receiver:
        notifier = Notifier(
            config(tmp_path, receiver.url, route=route),
            metrics=Metrics(),
            mine=lambda key: key in owned,
            history=lambda key: list(history),
            clock=clock,
        )
        desired = DesiredState({"default/t": definition()})

        async def body() -> None:
            notifier.on_run(finished(RunStatus.FAILED, T0))
            await until(receiver, 1)
            owned.clear()
            notifier.after_pass(desired, left=["default/t"])
            history[:] = [  # the other replica's runs, newest first
                finished(RunStatus.FAILED, T0 + timedelta(minutes=2)),
                finished(RunStatus.FAILED, T0 + timedelta(minutes=1)),
                finished(RunStatus.FAILED, T0),
            ]
            owned.add("default/t")
            notifier.after_pass(desired)
            for minute in (3, 4):
                notifier.on_run(finished(RunStatus.FAILED, T0 + timedelta(minutes=minute)))
            while notifier.considered < 3:
                await asyncio.sleep(0.01)

        running(notifier, body)  # stopping delivers what is queued
    assert receiver.events() == ["failed", "failed"]
    assert [r.json["reminder"] for r in receiver.received] == [False, True]
    assert receiver.received[1].json["run"]["id"] == run_id("default/t", T0 + timedelta(minutes=3))


def test_a_task_that_left_is_read_from_the_history_again_when_it_comes_back(
    tmp_path: Path,
) -> None:
    """With replicas: the task's failure ended here, but it left before the notifier looked at
    it; it recovered on another replica. Back here, its first success is no recovery."""
    owned = {"default/t"}
    history: list[RunRecord] = []

    with receiving(SECRET) as receiver:
        notifier = Notifier(
            config(tmp_path, receiver.url),
            metrics=Metrics(),
            mine=lambda key: key in owned,
            history=lambda key: list(history),
        )
        desired = DesiredState({"default/t": definition()})

        async def body() -> None:
            notifier.on_run(finished(RunStatus.FAILED, T0))
            owned.clear()  # handed over before the record was looked at
            notifier.after_pass(desired, left=["default/t"])
            while notifier.considered < 1:
                await asyncio.sleep(0)
            history[:] = [  # what the other replica ran meanwhile, newest first
                finished(RunStatus.SUCCEEDED, T0 + timedelta(minutes=1)),
                finished(RunStatus.FAILED, T0),
            ]
            owned.add("default/t")  # and back
            notifier.after_pass(desired)
            notifier.on_run(finished(RunStatus.SUCCEEDED, T0 + timedelta(minutes=2)))
            while notifier.considered < 2:
                await asyncio.sleep(0)

        running(notifier, body)  # stopping delivers what is queued
    assert receiver.events() == ["failed"]


def events_after_a_restart(
    tmp_path: Path, before: Sequence[RunRecord], after_restart: RunStatus
) -> list[str]:
    """What is sent when, after a restart (the history: ``before``, newest first), a run ends
    ``after_restart``."""
    with receiving(SECRET) as receiver:
        notifier = Notifier(
            config(tmp_path, receiver.url), metrics=Metrics(), history=lambda key: before
        )

        async def body() -> None:
            notifier.on_run(finished(after_restart, T0))
            while notifier.considered == 0:
                await asyncio.sleep(0.01)

        running(notifier, body)  # stopping delivers what is queued
    return receiver.events()


@pytest.mark.parametrize(
    ("after_restart", "expected"),
    [(RunStatus.FAILED, ["failed"]), (RunStatus.SUCCEEDED, [])],
)
def test_a_run_interrupted_by_the_shutdown_before_a_restart_counts_for_nothing(
    tmp_path: Path, after_restart: RunStatus, expected: list[str]
) -> None:
    before = [  # newest first: ok, then a run cut short by crontask's own shutdown
        finished(RunStatus.INTERRUPTED, T0 - timedelta(minutes=1), reason=SHUTDOWN_REASON),
        finished(RunStatus.SUCCEEDED, T0 - timedelta(minutes=2)),
    ]
    assert events_after_a_restart(tmp_path, before, after_restart) == expected


@pytest.mark.parametrize(
    ("after_restart", "expected"),
    [(RunStatus.SUCCEEDED, ["recovered"]), (RunStatus.FAILED, ["failed"])],
)
def test_after_a_restart_a_retry_cut_by_the_shutdown_leaves_the_failure_before_it(
    tmp_path: Path, after_restart: RunStatus, expected: list[str]
) -> None:
    """Before the restart, attempt 1 failed and its retry was cut short by crontask's own
    shutdown: the shutdown changes nothing of how the task does, so its run ended with that
    failure and the task was failing (as the notifier had said before it stopped)."""
    retry = dataclasses.replace(
        finished(RunStatus.INTERRUPTED, T0 - timedelta(minutes=1), attempt=2, reason="Shutdown"),
        trigger=Trigger.RETRY,
    )
    before = [  # newest first
        retry,
        finished(RunStatus.FAILED, T0 - timedelta(minutes=1)),
        finished(RunStatus.SUCCEEDED, T0 - timedelta(minutes=2)),
    ]
    assert events_after_a_restart(tmp_path, before, after_restart) == expected


def test_after_a_restart_a_long_run_s_skipped_slots_do_not_hide_how_it_ended(
    tmp_path: Path,
) -> None:
    """Forbid and a run longer than 20 slots: the newest records are all skips. The history
    crontask run gives the notifier reads on until a run that ended: the task was failing, so
    its next success is a recovery."""
    store = MemoryRunStore()
    store.save_many([finished(RunStatus.FAILED, T0 - timedelta(minutes=30))])
    store.save_many(
        [
            finished(RunStatus.SKIPPED, T0 - timedelta(minutes=m), reason="ConcurrencyForbid")
            for m in range(1, 26)
        ]
    )
    with receiving(SECRET) as receiver:
        notifier = Notifier(
            config(tmp_path, receiver.url),
            metrics=Metrics(),
            history=lambda key: _recent_runs(store, key),
        )

        async def body() -> None:
            notifier.on_run(finished(RunStatus.SUCCEEDED, T0))
            while notifier.considered == 0:
                await asyncio.sleep(0.01)

        running(notifier, body)
    assert receiver.events() == ["recovered"]


def test_failing_since_after_a_restart_is_the_first_of_the_failures(tmp_path: Path) -> None:
    before = [  # newest first: failing since the run of T0 - 3 min (its end: 1 s later)
        finished(RunStatus.FAILED, T0 - timedelta(minutes=1)),
        finished(RunStatus.INTERRUPTED, T0 - timedelta(minutes=1, seconds=30), reason="Shutdown"),
        finished(RunStatus.TIMED_OUT, T0 - timedelta(minutes=2)),
        finished(RunStatus.FAILED, T0 - timedelta(minutes=3)),
        finished(RunStatus.SUCCEEDED, T0 - timedelta(minutes=4)),
        finished(RunStatus.FAILED, T0 - timedelta(minutes=5)),
    ]

    def history(key: str) -> Sequence[RunRecord]:
        return before

    with receiving(SECRET) as receiver:
        notifier = Notifier(config(tmp_path, receiver.url), metrics=Metrics(), history=history)

        async def body() -> None:
            notifier.on_run(finished(RunStatus.SUCCEEDED, T0))
            await until(receiver, 1)

        running(notifier, body)
    assert receiver.events() == ["recovered"]
    since = T0 - timedelta(minutes=3) + timedelta(seconds=1)
    assert receiver.received[0].json["failingSince"] == since.isoformat()


def test_reminders_follow_the_repeat_interval(tmp_path: Path) -> None:
    route = "  - receiver: hook\n    events: [failed]\n    repeatInterval: 1h\n"
    clock = Clock()
    with receiving(SECRET) as receiver:
        notifier = Notifier(
            config(tmp_path, receiver.url, route=route), metrics=Metrics(), clock=clock
        )

        async def failing_at(minutes: int) -> None:
            clock.now = T0 + timedelta(minutes=minutes)
            seen = notifier.considered
            notifier.on_run(finished(RunStatus.FAILED, clock.now))
            while notifier.considered == seen:  # looked at with this clock
                await asyncio.sleep(0.01)

        async def body() -> None:
            for minutes in (0, 30, 59, 61, 90, 122):
                await failing_at(minutes)
            await until(receiver, 3)

        running(notifier, body)
    assert [r.json["reminder"] for r in receiver.received] == [False, True, True]
    assert [r.json["run"]["scheduledAt"][11:16] for r in receiver.received] == [
        "01:00",
        "02:01",
        "03:02",
    ]


def test_definition_errors_are_sent_once_and_matched(tmp_path: Path) -> None:
    route = (
        "  - receiver: hook\n    events: [definitionError]\n"
        "    match: {namespace: ops, source: git}\n"
    )
    ops = DefinitionError(Location("git", "ops.yaml", 3, 5), "spec.schedule: bad", "ops/a")
    other = DefinitionError(Location("file", "b.yaml", 1, 1), "spec: bad", "ops/b")
    nameless = DefinitionError(Location("git", "c.yaml", 1, 1), "not YAML")
    with receiving(SECRET) as receiver:
        notifier = Notifier(config(tmp_path, receiver.url, route=route), metrics=Metrics())

        async def body() -> None:
            notifier.after_pass(DesiredState({}, errors=(ops, other, nameless)))
            notifier.after_pass(DesiredState({}, errors=(ops, other, nameless)))
            await until(receiver, 1)

        running(notifier, body)
    assert receiver.events() == ["definitionError"]
    assert receiver.received[0].json["errors"] == ["ops.yaml:3:5: spec.schedule: bad"]


def test_a_definition_error_whose_line_moves_is_not_told_again(tmp_path: Path) -> None:
    """An edit above a broken task moves its error's line, and a new git revision of a file
    still broken changes the line's revision: the same problem, not news. Fixed and broken
    again, it is told again."""
    route = "  - receiver: hook\n    events: [definitionError]\n"

    def error(line: int, revision: str, message: str = "spec.schedule: bad") -> DefinitionError:
        return DefinitionError(Location("git", "ops.yaml", line, 5, revision), message, "ops/a")

    other = DefinitionError(Location("git", "b.yaml", 1, 1, "r2"), "spec: bad", "ops/b")
    with receiving(SECRET) as receiver:
        notifier = Notifier(config(tmp_path, receiver.url, route=route), metrics=Metrics())

        async def body() -> None:
            notifier.after_pass(DesiredState({}, errors=(error(3, "r1"),)))
            await until(receiver, 1)
            notifier.after_pass(DesiredState({}, errors=(error(9, "r2"), other)))
            await until(receiver, 2)
            notifier.after_pass(DesiredState({}, errors=(other,)))
            notifier.after_pass(DesiredState({}, errors=(error(9, "r3"), other)))
            await until(receiver, 3)

        running(notifier, body)
    assert [m.json["errors"] for m in receiver.received] == [
        ["ops.yaml:3:5: spec.schedule: bad (revision r1)"],
        ["b.yaml:1:1: spec: bad (revision r2)"],  # the first error, moved: not news
        ["ops.yaml:9:5: spec.schedule: bad (revision r3)"],  # fixed, then broken again
    ]


def test_a_conflict_goes_to_routes_of_each_source_that_declares_its_key(tmp_path: Path) -> None:
    """A file's task shadowed by an API task of the same key: a route for the file source
    hears of it (its owner would not know otherwise), as /api/v1/sources lists it there."""
    route = "  - receiver: hook\n    events: [definitionError]\n    match: {source: file}\n"
    file = definition("a", path="tasks/a.yaml")
    api = dataclasses.replace(file, location=Location("api", "/api/v1/tasks/default/a", 1, 1))
    state = assemble([file, api])
    assert [c.winner.source for c in state.conflicts] == ["api"]
    with receiving(SECRET) as receiver:
        notifier = Notifier(config(tmp_path, receiver.url, route=route), metrics=Metrics())

        async def body() -> None:
            notifier.after_pass(state)
            await until(receiver, 1)

        running(notifier, body)
    assert [e.split(":")[0] for e in receiver.received[0].json["errors"]] == [
        "default/a is defined more than once"
    ]


def test_a_definition_error_naming_no_task_goes_only_to_routes_of_its_source(
    tmp_path: Path,
) -> None:
    route = "  - receiver: hook\n    events: [definitionError]\n    match: {source: git}\n"
    local = DefinitionError(Location("file", "local/x.yaml", 1, 1), "not YAML")
    remote = DefinitionError(Location("git", "c.yaml", 1, 1), "not YAML")
    with receiving(SECRET) as receiver:
        notifier = Notifier(config(tmp_path, receiver.url, route=route), metrics=Metrics())

        async def body() -> None:
            notifier.after_pass(DesiredState({}, errors=(local, remote)))
            await until(receiver, 1)

        running(notifier, body)
    assert receiver.received[0].json["errors"] == ["c.yaml:1:1: not YAML"]


def test_a_url_file_turned_into_a_fifo_fails_the_message_and_blocks_nothing(
    tmp_path: Path,
) -> None:
    """The URL is read again at each delivery: a FIFO put in its place must neither wait for
    a writer (on the event loop, that would stop every run) nor be read."""
    metrics = Metrics()
    with receiving(SECRET) as receiver:
        notifier = Notifier(config(tmp_path, receiver.url), metrics=metrics, backoff=0.001)
        url_file = tmp_path / "url"
        url_file.unlink()
        os.mkfifo(url_file)

        def writer() -> None:  # unblocks a reader that waits, after a while: then it is read
            with url_file.open("w") as fifo:
                fifo.write(receiver.url)

        late = threading.Timer(3.0, writer)
        late.start()
        try:

            async def body() -> None:
                notifier.on_run(finished(RunStatus.FAILED, T0))
                for _ in range(500):
                    if counts(metrics).get("failed"):
                        return
                    await asyncio.sleep(0.01)

            running(notifier, body)
            assert counts(metrics)["failed"] == 1
            assert receiver.received == []
        finally:
            late.cancel()
            late.join(0.5)
            if late.is_alive():  # it fired, and its open() waits for a reader: be one
                os.close(os.open(url_file, os.O_RDONLY | os.O_NONBLOCK))
                late.join(10)


def test_only_the_owner_of_a_task_notifies(tmp_path: Path) -> None:
    with receiving(SECRET) as receiver:
        notifier = Notifier(
            config(tmp_path, receiver.url), metrics=Metrics(), mine=lambda key: key != "default/t"
        )

        async def body() -> None:
            notifier.on_run(finished(RunStatus.FAILED, T0))
            notifier.on_run(finished(RunStatus.FAILED, T0, key="default/u"))
            await until(receiver, 1)

        running(notifier, body)
    assert [r.json["task"]["key"] for r in receiver.received] == ["default/u"]


def test_a_receiver_that_fails_is_retried_with_backoff(tmp_path: Path) -> None:
    metrics = Metrics()
    with receiving(SECRET) as receiver:
        receiver.failures_left = 2
        notifier = Notifier(config(tmp_path, receiver.url), metrics=metrics, backoff=0.01)

        async def body() -> None:
            notifier.on_run(finished(RunStatus.FAILED, T0))
            await until(receiver, 3)

        running(notifier, body)
    assert len({r.body for r in receiver.received}) == 1  # the same message, three times
    assert counts(metrics)["sent"] == 1


def test_a_refusal_is_not_retried(tmp_path: Path) -> None:
    metrics = Metrics()
    with receiving(SECRET) as receiver:
        receiver.failures_left, receiver.fail_status = 1, 400
        notifier = Notifier(config(tmp_path, receiver.url), metrics=metrics, backoff=0.01)

        async def body() -> None:
            notifier.on_run(finished(RunStatus.FAILED, T0))
            notifier.on_run(finished(RunStatus.SUCCEEDED, T0 + timedelta(minutes=1)))
            await until(receiver, 2)

        running(notifier, body)
    assert receiver.events() == ["failed", "recovered"]
    assert counts(metrics) == {"dropped": 0, "failed": 1, "sent": 1}


def test_a_receiver_that_is_down_is_given_up_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    url = f"http://127.0.0.1:{free_port()}/secret-path-token"
    notifier = Notifier(config(tmp_path, url), metrics=metrics, backoff=0.01)
    caplog.set_level(logging.DEBUG, logger="crontask.notify")

    async def body() -> None:
        notifier.on_run(finished(RunStatus.FAILED, T0))
        while counts(metrics)["failed"] == 0:
            await asyncio.sleep(0.02)

    running(notifier, body)
    assert counts(metrics) == {"dropped": 0, "failed": 1, "sent": 0}
    attempts = [r for r in caplog.records if r.getMessage().startswith("notification")]
    assert len(attempts) == notify.MAX_ATTEMPTS
    assert "secret-path-token" not in caplog.text
    assert SECRET.decode() not in caplog.text


def test_the_queue_is_bounded(tmp_path: Path) -> None:
    metrics = Metrics()
    route = "  - receiver: hook\n    events: [everyFailure]\n"
    notifier = Notifier(config(tmp_path, "http://127.0.0.1:9/", route=route), metrics=metrics)

    async def flood() -> None:  # the component is not running: nothing is delivered
        for i in range(notify.QUEUE_MAX + 5):
            notifier.on_run(finished(RunStatus.FAILED, T0 + timedelta(seconds=i)))
        while notifier._intake:  # what the component's loop does, one record at a time
            await notifier._consider(notifier._intake.popleft())

    asyncio.run(flood())
    assert len(notifier.queues["hook"]) == notify.QUEUE_MAX
    assert counts(metrics)["dropped"] == 5


@pytest.mark.parametrize("kind", ["generic", "slack"])
def test_generic_and_slack_bodies(tmp_path: Path, kind: str) -> None:
    with receiving() as receiver:
        notifier = Notifier(
            config(tmp_path, receiver.url, kind=kind), metrics=Metrics(), page_url="http://p:8"
        )

        async def body() -> None:
            notifier.on_run(finished(RunStatus.FAILED, T0, output="<oops> & more"))
            await until(receiver, 1)

        running(notifier, body)
    got = receiver.received[0]
    assert "X-Signature" not in got.headers
    if kind == "slack":
        text = got.json["text"]
        assert text.startswith(":red_circle: default/t failed: exit code 1")
        assert f"<http://p:8/runs/{run_id('default/t', T0)}|" in text
        assert "&lt;oops&gt; &amp; more" in text
    else:
        assert got.json["event"] == "failed"
        assert got.json["run"]["outputTail"] == "<oops> & more"


def test_records_waiting_to_be_looked_at_keep_only_what_a_message_says(tmp_path: Path) -> None:
    """Up to 10 000 records wait when the store is slow: each keeps the tail a message can
    carry (2 048 characters), not its 64 KiB of output."""
    notifier = Notifier(config(tmp_path, "http://127.0.0.1:9/"), metrics=Metrics())
    notifier.on_run(finished(RunStatus.FAILED, T0, output="x" * 65_536 + "END"))
    (waiting,) = notifier._intake
    assert len(waiting.output) == 2048
    assert waiting.output.endswith("END")
