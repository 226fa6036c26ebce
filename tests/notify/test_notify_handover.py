"""With replicas (``--ha``) a run is told of by the replica that runs it. A run still going when
its task moves to another replica (a replica joins: every rolling update) ends where it ran,
and only that replica's dispatcher hears of its end: it tells of it there, and the new owner,
reading that end from the run store, takes it as told. Each run is told of once, by one
replica, and a ``recovered`` follows the ``failed`` the receivers got."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from reconciler.controller.wiring import _recent_runs
from reconciler.core.desired import DesiredState
from reconciler.core.runs import RetriedAttempt, RunRecord, RunStatus, Trigger, run_id
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from reconciler.sinks.notify_config import Notifications, parse
from reconciler.store import MemoryRunStore
from tests.helpers import definition

T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
KEY = "default/t"
TEXT = (
    "receivers:\n  - name: hook\n    type: generic\n    url: http://hook.invalid/\n"
    "routes:\n  - receiver: hook\n    events: [failed, recovered]\n"
)
NOTIFICATIONS: Notifications = parse(TEXT, "n.yaml", Path("/"))

Sent = list[tuple[str, str, str, bool]]  # (replica, event, run id, reminder)


def by_run(sent: Sent) -> Sent:
    """In the order of the runs (a run's id ends with its slot): each replica has its own
    sender, so two replicas' messages may arrive in either order."""
    return sorted(sent, key=lambda message: message[2])


class Replica:
    """One replica as its notifier sees it: ownership by a shared table (the assignment), and
    a dispatcher that writes each record to the shared run store, then hands it to its
    listener (``controller.execution``: saved, then heard)."""

    def __init__(
        self, name: str, owners: dict[str, str], store: MemoryRunStore, sent: Sent
    ) -> None:
        self.name, self.store = name, store

        def receive(request: httpx.Request) -> httpx.Response:
            body = json.loads(request.content)
            sent.append((name, body["event"], body["run"]["id"], body["reminder"]))
            return httpx.Response(204)

        self.notifier = Notifier(
            NOTIFICATIONS,
            metrics=Metrics(),
            mine=lambda key: owners.get(key) == name,
            history=lambda key: _recent_runs(store, key),
            transport=httpx.MockTransport(receive),
        )

    def start(self, slot: datetime, trigger: Trigger = Trigger.SCHEDULE) -> RunRecord:
        record = RunRecord(
            id=run_id(KEY, slot),
            task=KEY,
            scheduled_at=slot,
            trigger=trigger,
            status=RunStatus.RUNNING,
            started_at=slot,
            owner=self.name,
        )
        self.store.claim(record)
        self.notifier.on_run(record)
        return record

    def end(self, record: RunRecord, status: RunStatus, *, retried: bool = False) -> RunRecord:
        final = record.finish(
            status,
            finished_at=record.scheduled_at + timedelta(seconds=8),
            exit_code=0 if status is RunStatus.SUCCEEDED else 1,
            reason=None if status is RunStatus.SUCCEEDED else "NonZeroExit",
        )
        self.store.complete(final)
        self.notifier.on_run(RetriedAttempt.of(final) if retried else final)
        return final

    async def looked_at(self, count: int) -> None:
        """Until the notifier has looked at ``count`` records (or 5 s have passed: a record
        it did not take is never looked at)."""
        for _ in range(1000):
            if self.notifier.considered >= count:
                return
            await asyncio.sleep(0.005)
        raise AssertionError(f"replica {self.name} looked at {self.notifier.considered} records")


@contextlib.asynccontextmanager
async def replicas(*members: Replica) -> AsyncIterator[None]:
    """The members' notifiers running; stopped at the end, which delivers what is queued."""
    stop = asyncio.Event()
    ready = [asyncio.Event() for _ in members]
    components = [
        asyncio.create_task(m.notifier.run(r.set, stop))
        for m, r in zip(members, ready, strict=True)
    ]
    for event in ready:
        await asyncio.wait_for(event.wait(), 5)
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*components), 20)


def two_replicas(retry: int = 0) -> tuple[Replica, Replica, dict[str, str], DesiredState, Sent]:
    """Replica ``a`` owns the task, which has succeeded before; ``b`` has just joined."""
    store, sent = MemoryRunStore(), Sent()
    owners = {KEY: "a"}
    a, b = Replica("a", owners, store, sent), Replica("b", owners, store, sent)
    task = definition("t", retry={"limit": retry})
    desired = DesiredState({task.key: task})
    for member in (a, b):
        member.notifier.after_pass(desired)
    before = T0 - timedelta(hours=1)
    store.claim(
        RunRecord(
            id=run_id(KEY, before),
            task=KEY,
            scheduled_at=before,
            trigger=Trigger.SCHEDULE,
            status=RunStatus.SUCCEEDED,
            started_at=before,
            finished_at=before + timedelta(seconds=1),
            exit_code=0,
            owner="a",
        )
    )
    return a, b, owners, desired, sent


def move(owners: dict[str, str], desired: DesiredState, a: Replica, b: Replica) -> None:
    """The task moves from ``a`` to ``b``: each one's next pass (``after_pass``'s ``left``)."""
    owners[KEY] = "b"
    a.notifier.after_pass(desired, left=[KEY])
    b.notifier.after_pass(desired)


@pytest.mark.parametrize(
    ("trigger", "started"),
    [
        (Trigger.SCHEDULE, "before-the-move"),
        (Trigger.MANUAL, "before-the-move"),  # asked of the owner, as the README says to
        (Trigger.SCHEDULE, "after-the-move"),  # claimed ahead of its slot, or fired before
    ],
)
def test_a_run_going_when_its_task_moves_is_told_where_it_ends(
    trigger: Trigger, started: str
) -> None:
    a, b, owners, desired, sent = two_replicas()
    slot, after = T0 + timedelta(microseconds=1), T0 + timedelta(minutes=1)

    async def main() -> None:
        async with replicas(a, b):
            if started == "after-the-move":
                move(owners, desired, a, b)
            going = a.start(slot, trigger)
            if started == "before-the-move":
                move(owners, desired, a, b)
            a.end(going, RunStatus.FAILED)
            await a.looked_at(1)
            b.end(b.start(after), RunStatus.SUCCEEDED)  # the new owner's next run
            await b.looked_at(1)

    asyncio.run(main())
    assert by_run(sent) == [
        ("a", "failed", run_id(KEY, slot), False),
        ("b", "recovered", run_id(KEY, after), False),
    ]


def test_a_failure_whose_retry_the_move_abandons_is_told_where_it_ran() -> None:
    """The retry waiting on the replica that gave the task away is recorded ``HandedOver``
    (skipped, not carried over): the run ended with the failed attempt before it, there."""
    a, b, owners, desired, sent = two_replicas(retry=1)
    after = T0 + timedelta(minutes=1)

    async def main() -> None:
        async with replicas(a, b):
            first = a.end(a.start(T0), RunStatus.FAILED, retried=True)
            move(owners, desired, a, b)
            abandoned = dataclasses.replace(
                first,
                trigger=Trigger.RETRY,
                status=RunStatus.SKIPPED,
                attempt=2,
                started_at=None,
                reason="HandedOver",
                message="the task moved to another replica before this retry could start",
            )
            a.store.claim(abandoned)
            a.notifier.on_run(abandoned)
            await a.looked_at(2)
            b.end(b.start(after), RunStatus.SUCCEEDED)
            await b.looked_at(1)

    asyncio.run(main())
    assert by_run(sent) == [
        ("a", "failed", run_id(KEY, T0), False),
        ("b", "recovered", run_id(KEY, after), False),
    ]


def test_a_manual_run_asked_of_a_replica_that_does_not_own_the_task_is_not_told() -> None:
    """The README's rule, unchanged: ask the owner when it matters."""
    a, b, owners, desired, sent = two_replicas()
    move(owners, desired, a, b)
    slot = T0 + timedelta(microseconds=1)

    async def main() -> None:
        async with replicas(a, b):
            a.end(a.start(slot, Trigger.MANUAL), RunStatus.FAILED)

    asyncio.run(main())
    assert sent == []
    assert a.notifier.considered == 0  # the stop looks at whatever was taken


def test_when_the_replica_dies_before_telling_the_next_success_recovers_as_after_a_restart() -> (
    None
):
    """Killed after its run's end was written and before its notifier looked at it: the new
    owner reads a failure that may have been told (as after any restart, whether the message
    left is not known), so its next success says ``recovered``: at least once."""
    a, b, owners, desired, sent = two_replicas()
    after = T0 + timedelta(minutes=1)

    async def main() -> None:
        async with replicas(b):
            going = a.start(T0)
            move(owners, desired, a, b)
            final = going.finish(RunStatus.FAILED, finished_at=T0 + timedelta(seconds=8))
            a.store.complete(final)  # and no listener heard it: a kill -9
            b.end(b.start(after), RunStatus.SUCCEEDED)
            await b.looked_at(1)

    asyncio.run(main())
    assert sent == [("b", "recovered", run_id(KEY, after), False)]


def test_a_replica_that_told_of_a_run_of_a_task_it_gave_away_keeps_nothing_of_it() -> None:
    """The task's state goes on changing on its new owner: if the task comes back, its next
    run is compared with the run store again."""
    a, b, owners, desired, sent = two_replicas()
    later, back = T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)

    async def main() -> None:
        async with replicas(a, b):
            going = a.start(T0)
            move(owners, desired, a, b)
            a.end(going, RunStatus.FAILED)
            await a.looked_at(1)
            b.end(b.start(later), RunStatus.SUCCEEDED)
            await b.looked_at(1)
            owners[KEY] = "a"  # and back
            b.notifier.after_pass(desired, left=[KEY])
            a.notifier.after_pass(desired)
            a.end(a.start(back), RunStatus.SUCCEEDED)
            await a.looked_at(2)

    asyncio.run(main())
    assert [(who, event) for who, event, _, _ in by_run(sent)] == [
        ("a", "failed"),
        ("b", "recovered"),
    ]
