"""A failure storm: many tasks failing at once, their ``everyFailure`` and ``failed`` more than
a receiver's queue holds. The ``failed`` (sent once, as a task starts failing) must all reach
the receiver: only the per-run messages are pushed out. 10 000 tasks failing in the same
minute lost thousands of ``failed`` to a receiver answering in 3 ms, each sent again only with
its task's next failure (an hour late for an hourly task). Of one task's changes waiting, the
newest tells its state: a stale one is pushed out, never left alone. Real HTTP receiver, held
on its first request (an event) while the storm is queued: no race with the sender."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus
from reconciler.sinks import notify_delivery
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from reconciler.sinks.notify_changes import ReceiverQueue
from reconciler.sinks.notify_queue import Message
from tests.notify.receiver import Answer, Receiver, receiving
from tests.notify.test_notifier import T0, config, counts, finished, running

QUEUE = 20  # the per-run queue's bound here, so that the storm is small
TASKS = 3 * QUEUE
ROUTE = "  - receiver: hook\n    events: [failed, recovered, everyFailure]\n"


def held_first(release: threading.Event) -> Answer:
    """200 to every request, the first only once ``release`` is set."""
    calls = [0]

    def answer(handler: BaseHTTPRequestHandler, closing: threading.Event) -> None:
        calls[0] += 1
        if calls[0] == 1:
            release.wait(20)
        handler.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")

    return answer


async def considered(notifier: Notifier, count: int) -> None:
    async with asyncio.timeout(20):
        while notifier.considered < count:
            await asyncio.sleep(0.01)


def storm(
    tmp_path: Path, receiver: Receiver, runs: list[tuple[str, RunStatus]], expected: int
) -> Metrics:
    """A first failure (of ``default/first``) is delivered and held by the receiver; ``runs``
    (task, status: a minute each) end meanwhile; then the receiver is let go, and the test
    waits for ``expected`` requests in all."""
    release = threading.Event()
    receiver.answer = held_first(release)
    metrics = Metrics()
    notifier = Notifier(
        config(tmp_path, receiver.url, kind="generic", route=ROUTE), metrics=metrics
    )

    async def body() -> None:
        notifier.on_run(finished(RunStatus.FAILED, T0, key="default/first"))
        await asyncio.to_thread(receiver.wait_for, 1)  # its sender is held
        for n, (key, status) in enumerate(runs):
            notifier.on_run(finished(status, T0 + timedelta(minutes=n + 1), key=key))
        await considered(notifier, 1 + len(runs))
        release.set()
        await asyncio.to_thread(receiver.wait_for, expected)

    running(notifier, body)
    return metrics


def sent(receiver: Receiver) -> list[tuple[str, str]]:
    return [(r.json["event"], r.json["task"]["key"]) for r in receiver.received]


@pytest.fixture(autouse=True)
def _small_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify_delivery, "QUEUE_MAX", QUEUE)


def test_a_storm_of_failures_pushes_out_every_failure_but_no_failed(tmp_path: Path) -> None:
    keys = [f"default/t{n}" for n in range(TASKS)]
    delivered = 1 + TASKS + QUEUE
    with receiving() as receiver:
        metrics = storm(tmp_path, receiver, [(key, RunStatus.FAILED) for key in keys], delivered)
    # The first task's "failed" (held), then every task's "failed", in order, then the newest
    # "everyFailure" the per-run queue held (the first task's is among those pushed out).
    assert sent(receiver) == [
        ("failed", "default/first"),
        *(("failed", key) for key in keys),
        *(("everyFailure", key) for key in keys[-QUEUE:]),
    ]
    made = 2 + 2 * TASKS
    assert counts(metrics) == {"dropped": made - delivered, "failed": 0, "sent": delivered}


def test_of_one_task_s_changes_waiting_the_newest_tells_its_state(tmp_path: Path) -> None:
    """``a`` fails and recovers: both, in order. ``b`` fails, recovers, fails again: its first
    ``failed`` is stale (the ``recovered`` says since when it was failing): pushed out, and
    what is delivered of ``b`` ends with its state now."""
    ok, failed = RunStatus.SUCCEEDED, RunStatus.FAILED
    runs = [
        ("default/a", failed),
        ("default/b", failed),
        ("default/a", ok),
        ("default/b", ok),
        ("default/b", failed),
    ]
    with receiving() as receiver:
        metrics = storm(tmp_path, receiver, runs, 1 + 4 + 4)
    changes = [(event, key) for event, key in sent(receiver) if event != "everyFailure"]
    assert changes == [
        ("failed", "default/first"),
        ("failed", "default/a"),
        ("recovered", "default/a"),
        ("recovered", "default/b"),
        ("failed", "default/b"),
    ]
    assert counts(metrics) == {"dropped": 1, "failed": 0, "sent": 9}


def change(event: str, key: str, n: int) -> Message:
    return Message("hook", event, {"event": event, "task": {"key": key}, "n": n})


def test_a_reminder_of_the_state_a_waiting_change_tells_is_pushed_out() -> None:
    queue = ReceiverQueue()
    assert queue.append(change("failed", "default/t", 0), 1) is None
    reminder = change("failed", "default/t", 1)
    assert queue.append(reminder, 1) is reminder
    assert queue.append(Message("hook", "everyFailure", {"n": 2}), 1) is None
    assert queue.append(change("recovered", "default/t", 3), 1) is None
    # Changes first, each task's in order; the per-run messages after them.
    assert [m.body["n"] for m in queue] == [0, 3, 2]
    stale = queue.append(change("failed", "default/t", 4), 1)
    assert stale is not None
    assert stale.body["n"] == 0
    assert [queue.popleft().body["n"] for _ in range(len(queue))] == [3, 4, 2]
