"""``recovered`` survives a restart as ``failed`` does: at least once. A task's success after
failures that were told queues ``recovered``; if crontask stops while the message is still
queued or retried, the restarted process (a new notifier on the same SQLite run store, a real
receiver) reads the task back as recovered and says so again with its next success, as a
reminder. Its next failure instead is a plain ``failed``; a success after failures nobody told
of is no recovery to repeat."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from reconciler.controller.wiring import _recent_runs
from reconciler.core.desired import DesiredState
from reconciler.core.runs import PROCESS_DIED, RunRecord, RunStatus
from reconciler.sinks import notify_payload
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from reconciler.store import RunStore, open_store, sqlite_url
from tests.helpers import definition
from tests.notify.receiver import Receiver, receiving
from tests.notify.test_notifier import SECRET, T0, config, finished, running, until


def process(
    tmp_path: Path, store: RunStore, receiver: Receiver, successes_kept: int = 3
) -> Notifier:
    """The notifier of one crontask process, reading the task's past from ``store``; its pass
    has declared the task, which keeps ``successes_kept`` successful runs."""
    notifier = Notifier(
        config(tmp_path, receiver.url),
        metrics=Metrics(),
        history=lambda key: _recent_runs(store, key),
    )
    task = definition(successfulRunsHistoryLimit=successes_kept)
    notifier.after_pass(DesiredState({"default/t": task}))
    return notifier


def ended(notifier: Notifier, store: RunStore, record: RunRecord) -> None:
    """A run's end as the dispatcher hands it over: recorded, then heard of."""
    store.save_many([record])
    notifier.on_run(record)


async def considered(notifier: Notifier, count: int) -> None:
    while notifier.considered < count:
        await asyncio.sleep(0.005)


def stopped_while_recovered_is_retried(tmp_path: Path, store: RunStore, receiver: Receiver) -> None:
    """The first crontask: the task fails (told), then succeeds while the receiver answers 503;
    crontask stops with ``recovered`` being retried, which then fails for good."""
    first = process(tmp_path, store, receiver)

    async def body() -> None:
        ended(first, store, finished(RunStatus.FAILED, T0))
        await until(receiver, 1)
        receiver.failures_left, receiver.fail_status = 10**6, 503
        ended(first, store, finished(RunStatus.SUCCEEDED, T0 + timedelta(minutes=1)))
        await until(receiver, 2)  # its first attempt: a retry waits

    running(first, body)
    assert [(r.json["event"], r.json["reminder"]) for r in receiver.received[:2]] == [
        ("failed", False),
        ("recovered", False),
    ]
    receiver.failures_left = 0  # up again, for the restarted crontask


@pytest.mark.parametrize(
    ("after_restart", "expected"),
    [
        # Told once, however many successes follow.
        ([RunStatus.SUCCEEDED, RunStatus.SUCCEEDED], [("recovered", True)]),
        # Recovered, then failing again: a new incident, not a reminder of the old one.
        ([RunStatus.FAILED], [("failed", False)]),
    ],
)
def test_a_recovered_not_delivered_before_a_restart_is_sent_after_it(
    tmp_path: Path, after_restart: list[RunStatus], expected: list[tuple[str, bool]]
) -> None:
    store = open_store(sqlite_url(tmp_path), writer=True)
    try:
        with receiving(SECRET) as receiver:
            stopped_while_recovered_is_retried(tmp_path, store, receiver)
            seen = len(receiver.received)
            second = process(tmp_path, store, receiver)  # the restarted crontask

            async def body() -> None:
                for minute, status in enumerate(after_restart, start=2):
                    ended(second, store, finished(status, T0 + timedelta(minutes=minute)))
                await considered(second, len(after_restart))

            running(second, body)  # stopping delivers what is queued
            after = receiver.received[seen:]
    finally:
        store.close()
    assert [(r.json["event"], r.json["reminder"]) for r in after] == expected
    if expected[0][0] == "recovered":
        # Failing since the first failure, which ended 1 s after its slot.
        assert after[0].json["failingSince"] == (T0 + timedelta(seconds=1)).isoformat()
        assert (
            after[0].json["run"]["id"]
            == finished(RunStatus.SUCCEEDED, T0 + timedelta(minutes=2)).id
        )


def test_a_success_after_failures_nobody_told_of_is_not_repeated(tmp_path: Path) -> None:
    """The only failure before the success was a run a crash cut short that no notifier was
    handed (``crashes_told`` False): the receivers never heard the task was failing."""
    store = open_store(sqlite_url(tmp_path), writer=True)
    try:
        store.save_many(
            [
                finished(RunStatus.INTERRUPTED, T0 - timedelta(minutes=2), reason=PROCESS_DIED),
                finished(RunStatus.SUCCEEDED, T0 - timedelta(minutes=1)),
            ]
        )
        with receiving(SECRET) as receiver:
            notifier = process(tmp_path, store, receiver)

            async def body() -> None:
                ended(notifier, store, finished(RunStatus.SUCCEEDED, T0))
                await considered(notifier, 1)

            running(notifier, body)
    finally:
        store.close()
    assert receiver.events() == []


def test_slack_says_a_repeated_recovery_is_no_failure() -> None:
    body = notify_payload.payload(
        "recovered",
        key="default/t",
        source=None,
        record=finished(RunStatus.SUCCEEDED, T0),
        reminder=True,
        failing_since=T0,
        sent_at=T0,
    )
    text = notify_payload.slack(body)["text"]
    assert "still failing" not in text.splitlines()[0]
    assert text.splitlines()[0].endswith("succeeded (repeated)")


@pytest.mark.parametrize(
    ("stored", "successes_kept"),
    [
        # Another success came after the one that recovered: the process ran on past its
        # "recovered" (else every restart would repeat each recovery in the history it reads).
        ([RunStatus.FAILED, RunStatus.SUCCEEDED, RunStatus.SUCCEEDED], 3),
        # What housekeeping leaves of a task that keeps one success: the failure and the
        # newest success, however long the task ran on: nothing tells a recovery just now. (So
        # for one that keeps none, its success read before housekeeping came.)
        ([RunStatus.FAILED, RunStatus.SUCCEEDED], 1),
        ([RunStatus.FAILED, RunStatus.SUCCEEDED], 0),
    ],
)
def test_a_recovery_the_process_may_have_run_on_after_is_not_repeated(
    tmp_path: Path, stored: list[RunStatus], successes_kept: int
) -> None:
    store = open_store(sqlite_url(tmp_path), writer=True)
    try:
        store.save_many(
            [
                finished(status, T0 - timedelta(minutes=len(stored) - i))
                for i, status in enumerate(stored)
            ]
        )
        with receiving(SECRET) as receiver:
            notifier = process(tmp_path, store, receiver, successes_kept)

            async def body() -> None:
                ended(notifier, store, finished(RunStatus.SUCCEEDED, T0))
                await considered(notifier, 1)

            running(notifier, body)
    finally:
        store.close()
    assert receiver.events() == []


def test_a_task_that_keeps_no_success_is_not_read_back_as_failing(tmp_path: Path) -> None:
    """successfulRunsHistoryLimit 0: housekeeping leaves the failure alone, however many
    successes came after it; a restart must not send "recovered" for it each time. A failure
    after the restart is a plain, new ``failed``."""
    store = open_store(sqlite_url(tmp_path), writer=True)
    try:
        store.save_many([finished(RunStatus.FAILED, T0 - timedelta(days=3))])
        with receiving(SECRET) as receiver:
            notifier = process(tmp_path, store, receiver, successes_kept=0)

            async def body() -> None:
                ended(notifier, store, finished(RunStatus.SUCCEEDED, T0))
                ended(notifier, store, finished(RunStatus.FAILED, T0 + timedelta(minutes=1)))
                await considered(notifier, 2)

            running(notifier, body)
    finally:
        store.close()
    assert [(r.json["event"], r.json["reminder"]) for r in receiver.received] == [("failed", False)]
