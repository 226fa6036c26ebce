"""A receiver's queue, when full, pushes out what costs least to lose: the oldest
``everyFailure`` first (the next failure sends another), then the oldest other message that
tells no change of state (``definitionError``), and a ``failed`` or ``recovered`` only when it
holds nothing else (its task then tells it again: ``test_notify_state_resent``). Noisy tasks'
``everyFailure`` used to push out another task's only ``failed``. Real HTTP receiver."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus
from reconciler.sinks import notify_delivery
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from reconciler.sinks.notify_delivery import Delivery, Message
from tests.notify.receiver import receiving
from tests.notify.test_notifier import SECRET, T0, config, counts, finished, running

QUEUE = 20  # the queue's bound here, so that the flood is small
NOISY = "  - receiver: hook\n    events: [failed, recovered, everyFailure]\n"


def test_noisy_tasks_every_failure_does_not_push_out_another_task_s_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notify_delivery, "QUEUE_MAX", QUEUE)
    metrics = Metrics()
    with receiving(SECRET) as receiver:
        notifier = Notifier(config(tmp_path, receiver.url, route=NOISY), metrics=metrics)
        # A receiver slower than the runs: all of them are looked at before the first message
        # is delivered (what the component's loop does, one record at a time).
        notifier.on_run(finished(RunStatus.FAILED, T0, key="ops/backup-db"))
        for n in range(3 * QUEUE):
            at = T0 + timedelta(seconds=n + 1)
            notifier.on_run(finished(RunStatus.FAILED, at, key=f"default/noisy{n % 4}"))

        async def consider() -> None:
            while notifier._intake:
                await notifier._consider(notifier._intake.popleft())

        asyncio.run(consider())

        async def body() -> None:
            await asyncio.to_thread(receiver.wait_for, QUEUE)

        running(notifier, body)
    sent = [
        (r.json["event"], r.json["task"]["key"], r.json["run"]["scheduledAt"][14:19])
        for r in receiver.received
    ]
    # Each task's one "failed" is kept; the "everyFailure" pushed out are the oldest ones.
    assert sent == [
        ("failed", "ops/backup-db", "00:00"),
        *(("failed", f"default/noisy{n}", slot(n)) for n in range(4)),
        *(
            ("everyFailure", f"default/noisy{n % 4}", slot(n))
            for n in range(3 * QUEUE - (QUEUE - 5), 3 * QUEUE)
        ),
    ]
    made = 2 + 4 + 3 * QUEUE  # ops/backup-db's two, each noisy task's failed, the everyFailure
    assert counts(metrics) == {"dropped": made - QUEUE, "failed": 0, "sent": QUEUE}


def slot(n: int) -> str:
    """The noisy run ``n``'s slot, as mm:ss."""
    return (T0 + timedelta(seconds=n + 1)).isoformat()[14:19]


def message(event: str, n: int) -> Message:
    return Message("hook", event, {"event": event, "n": n})


def test_the_order_in_which_a_full_queue_pushes_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delivered in the order queued, whatever was pushed out from among them."""
    monkeypatch.setattr(notify_delivery, "QUEUE_MAX", 4)
    metrics = Metrics()
    with receiving() as receiver:
        delivery = Delivery(config(tmp_path, receiver.url, kind="generic"), metrics=metrics)
        queued = [
            message("failed", 0),
            message("definitionError", 1),
            message("everyFailure", 2),
            message("recovered", 3),
            message("everyFailure", 4),  # full: 2 goes
            message("failed", 5),  # 4 goes
            message("failed", 6),  # 1 goes
            message("everyFailure", 7),  # nothing else to push out: the newcomer goes
            message("recovered", 8),  # only state changes: the oldest (0) goes
        ]
        for each in queued:
            delivery.enqueue(each)
        assert [m.body["n"] for m in delivery.queues["hook"]] == [3, 5, 6, 8]

        async def main() -> None:
            stop = asyncio.Event()
            async with delivery.running(stop):
                await asyncio.to_thread(receiver.wait_for, 4)
                stop.set()

        asyncio.run(main())
    assert [r.json["n"] for r in receiver.received] == [3, 5, 6, 8]
    assert counts(metrics) == {"dropped": 5, "failed": 0, "sent": 4}
