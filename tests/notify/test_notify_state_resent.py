"""A ``failed`` or ``recovered`` that does not reach its receiver (given up after its attempts,
or pushed out of a full queue) is sent again with the task's next run of the same outcome, as
a reminder: they are sent only when the task's state changes, so a receiver down for a few
seconds at a task's first failure heard nothing of it for as long as it kept failing. Never a
``recovered`` for a task failing again, nor a second message when the first got through, nor
one to a receiver that got it. Real HTTP receivers; the failures are theirs (503)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.runs import RunStatus, run_id
from reconciler.sinks import notify, notify_delivery
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from reconciler.sinks.notify_config import parse
from tests.notify.receiver import Receiver, receiving
from tests.notify.test_notifier import SECRET, T0, config, counts, finished, running

DOWN = notify.MAX_ATTEMPTS  # 503s: a message given up


async def until(check: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.01)


async def ran(notifier: Notifier, status: RunStatus, minutes: int) -> None:
    """A run of default/t ends ``minutes`` after T0; returns once the notifier looked at it."""
    seen = notifier.considered
    notifier.on_run(finished(status, T0 + timedelta(minutes=minutes)))
    await until(lambda: notifier.considered > seen)


def test_a_failed_given_up_is_sent_again_with_the_next_failure(tmp_path: Path) -> None:
    metrics = Metrics()
    with receiving(SECRET) as receiver:
        receiver.failures_left, receiver.fail_status = DOWN, 503
        notifier = Notifier(config(tmp_path, receiver.url), metrics=metrics, backoff=0.001)

        async def body() -> None:
            await ran(notifier, RunStatus.FAILED, 0)
            await until(lambda: counts(metrics)["failed"] == 1)  # the receiver was down
            await ran(notifier, RunStatus.FAILED, 1)  # up again: told now, as a reminder
            await until(lambda: counts(metrics)["sent"] == 1)
            await ran(notifier, RunStatus.FAILED, 2)  # told: nothing more
            await ran(notifier, RunStatus.SUCCEEDED, 3)
            await until(lambda: counts(metrics)["sent"] == 2)

        running(notifier, body)
    delivered = [r.json for r in receiver.received[DOWN:]]
    assert [(m["event"], m["reminder"], m["run"]["scheduledAt"][11:16]) for m in delivered] == [
        ("failed", True, "01:01"),
        ("recovered", False, "01:03"),
    ]
    since = (T0 + timedelta(seconds=1)).isoformat()  # the first failure's end
    assert [m["failingSince"] for m in delivered] == [since, since]
    assert counts(metrics) == {"dropped": 0, "failed": 1, "sent": 2}


def test_a_recovered_given_up_is_sent_again_with_the_next_success(tmp_path: Path) -> None:
    metrics = Metrics()
    with receiving(SECRET) as receiver:
        notifier = Notifier(config(tmp_path, receiver.url), metrics=metrics, backoff=0.001)

        async def body() -> None:
            await ran(notifier, RunStatus.FAILED, 0)
            await until(lambda: counts(metrics)["sent"] == 1)
            receiver.failures_left, receiver.fail_status = DOWN, 503
            await ran(notifier, RunStatus.SUCCEEDED, 1)
            await until(lambda: counts(metrics)["failed"] == 1)
            await ran(notifier, RunStatus.SUCCEEDED, 2)  # told now, as a reminder
            await until(lambda: counts(metrics)["sent"] == 2)
            await ran(notifier, RunStatus.SUCCEEDED, 3)  # told: nothing more

        running(notifier, body)
    first, *refused, again = (r.json for r in receiver.received)
    assert len(refused) == DOWN
    assert (first["event"], again["event"], again["reminder"]) == ("failed", "recovered", True)
    assert again["run"]["id"] == run_id("default/t", T0 + timedelta(minutes=2))
    assert again["failingSince"] == first["failingSince"]  # the failures it recovered from
    assert counts(metrics) == {"dropped": 0, "failed": 1, "sent": 2}


def test_a_recovered_given_up_is_not_sent_once_the_task_fails_again(tmp_path: Path) -> None:
    metrics = Metrics()
    with receiving(SECRET) as receiver:
        notifier = Notifier(config(tmp_path, receiver.url), metrics=metrics, backoff=0.001)

        async def body() -> None:
            await ran(notifier, RunStatus.FAILED, 0)
            await until(lambda: counts(metrics)["sent"] == 1)
            receiver.failures_left, receiver.fail_status = DOWN, 503
            await ran(notifier, RunStatus.SUCCEEDED, 1)
            await until(lambda: counts(metrics)["failed"] == 1)
            await ran(notifier, RunStatus.FAILED, 2)  # a new failure: told as one
            await until(lambda: counts(metrics)["sent"] == 2)
            await ran(notifier, RunStatus.SUCCEEDED, 3)
            await until(lambda: counts(metrics)["sent"] == 3)

        running(notifier, body)
    delivered = [r.json for r in receiver.received]
    del delivered[1 : 1 + DOWN]
    assert [(m["event"], m["reminder"]) for m in delivered] == [
        ("failed", False),
        ("failed", False),
        ("recovered", False),
    ]
    assert delivered[1]["failingSince"] == (T0 + timedelta(minutes=2, seconds=1)).isoformat()


def test_a_failed_given_up_whose_task_recovered_meanwhile_sends_no_failed(
    tmp_path: Path,
) -> None:
    """The task recovered while its ``failed`` was still being tried: its ``recovered`` tells
    the story (failing since ...); the next failure is a new one, not a reminder."""
    metrics = Metrics()
    with receiving(SECRET) as receiver:
        receiver.failures_left, receiver.fail_status = DOWN, 503
        notifier = Notifier(config(tmp_path, receiver.url), metrics=metrics, backoff=0.05)

        async def body() -> None:
            await ran(notifier, RunStatus.FAILED, 0)
            await ran(notifier, RunStatus.SUCCEEDED, 1)  # queued behind the failed
            await until(lambda: counts(metrics)["sent"] == 1)
            await ran(notifier, RunStatus.SUCCEEDED, 2)
            await ran(notifier, RunStatus.FAILED, 3)
            await until(lambda: counts(metrics)["sent"] == 2)

        running(notifier, body)
    delivered = [r.json for r in receiver.received[DOWN:]]
    assert [(m["event"], m["reminder"], m["run"]["scheduledAt"][11:16]) for m in delivered] == [
        ("recovered", False, "01:01"),
        ("failed", False, "01:03"),
    ]


def two_receivers(tmp_path: Path, down: Receiver, up: Receiver) -> Any:
    text = (
        "receivers:\n"
        f"  - {{name: down, type: generic, url: '{down.url}'}}\n"
        f"  - {{name: up, type: generic, url: '{up.url}'}}\n"
        "routes:\n"
        "  - {receiver: down, events: [failed, recovered]}\n"
        "  - {receiver: up, events: [failed, recovered]}\n"
    )
    return parse(text, str(tmp_path / "n.yaml"), tmp_path)


def test_only_the_receiver_that_missed_it_is_told_again(tmp_path: Path) -> None:
    metrics = Metrics()
    with receiving() as down, receiving() as up:
        down.failures_left, down.fail_status = DOWN, 503
        notifier = Notifier(two_receivers(tmp_path, down, up), metrics=metrics, backoff=0.001)

        async def body() -> None:
            await ran(notifier, RunStatus.FAILED, 0)
            await until(lambda: counts_by(metrics) == {("down", "failed"): 1, ("up", "sent"): 1})
            await ran(notifier, RunStatus.FAILED, 1)
            await until(lambda: counts_by(metrics).get(("down", "sent")) == 1)
            await ran(notifier, RunStatus.FAILED, 2)

        running(notifier, body)
    assert [(r.json["event"], r.json["reminder"]) for r in up.received] == [("failed", False)]
    assert [(r.json["event"], r.json["reminder"]) for r in down.received[DOWN:]] == [
        ("failed", True)
    ]


def counts_by(metrics: Metrics) -> dict[tuple[str, str], int]:
    found = {}
    for line in metrics.render()[0].decode().splitlines():
        if line.startswith("crontask_notifications_total{"):
            labels, value = line.rsplit(" ", 1)
            receiver = labels.split('receiver="')[1].split('"')[0]
            result = labels.split('result="')[1].split('"')[0]
            if int(value):
                found[receiver, result] = int(value)
    return found


def test_a_failed_pushed_out_of_a_full_queue_is_sent_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A queue of nothing but state changes pushes out the oldest: its task tells it again."""
    monkeypatch.setattr(notify_delivery, "QUEUE_MAX", 3)
    metrics = Metrics()
    with receiving(SECRET) as receiver:
        notifier = Notifier(config(tmp_path, receiver.url), metrics=metrics, backoff=0.001)
        for n in range(4):  # before the component runs: nothing is delivered yet
            notifier.on_run(finished(RunStatus.FAILED, T0, key=f"default/t{n}"))

        async def body() -> None:
            await until(lambda: counts(metrics)["sent"] == 3)
            assert counts(metrics)["dropped"] == 1
            for n in range(4):
                later = T0 + timedelta(minutes=1)
                notifier.on_run(finished(RunStatus.FAILED, later, key=f"default/t{n}"))
            await until(lambda: counts(metrics)["sent"] == 4)

        running(notifier, body)
    got = [(r.json["task"]["key"], r.json["reminder"]) for r in receiver.received]
    assert got == [
        ("default/t1", False),
        ("default/t2", False),
        ("default/t3", False),
        ("default/t0", True),
    ]


def test_a_change_lost_again_when_sent_again_is_not_sent_a_third_time(tmp_path: Path) -> None:
    """A receiver that takes the message in but answers 5xx (a proxy's 502 after forwarding
    it, a receiver slower than the timeout) loses every copy as far as the notifier can tell:
    each state change is sent again once, with the task's next run of the same outcome, not
    with every run after. The "recovered" and the next "failed" (changes) are the markers:
    the queue is first in, first out, so a copy queued by the runs before would come first."""
    metrics = Metrics()
    with receiving(SECRET) as receiver:
        receiver.failures_left, receiver.fail_status = 10**6, 500
        notifier = Notifier(config(tmp_path, receiver.url), metrics=metrics, backoff=0.001)

        async def lost(messages: int) -> None:
            await until(lambda: counts(metrics)["failed"] == messages)

        async def body() -> None:
            for outcome, first, before in ((RunStatus.FAILED, 0, 0), (RunStatus.SUCCEEDED, 10, 2)):
                await ran(notifier, outcome, first)  # the change
                await lost(before + 1)
                await ran(notifier, outcome, first + 1)  # sent again
                await lost(before + 2)
                for minutes in range(first + 2, first + 6):  # not again
                    await ran(notifier, outcome, minutes)
            await ran(notifier, RunStatus.FAILED, 20)  # the last marker: all before it settled
            await until(lambda: [a[2] for a in got()].count("01:20") == DOWN)
            await until(lambda: counts(metrics)["failed"] == len(receiver.received) // DOWN)

        def got() -> list[tuple[str, bool, str]]:
            return [
                (r.json["event"], r.json["reminder"], r.json["run"]["scheduledAt"][11:16])
                for r in list(receiver.received)
            ]

        running(notifier, body)
    assert got() == [
        *[("failed", False, "01:00")] * DOWN,
        *[("failed", True, "01:01")] * DOWN,
        *[("recovered", False, "01:10")] * DOWN,
        *[("recovered", True, "01:11")] * DOWN,
        *[("failed", False, "01:20")] * DOWN,
    ]
    assert counts(metrics) == {"dropped": 0, "failed": 5, "sent": 0}
