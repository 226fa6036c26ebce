"""A run replaced (``Replace``) before its process ever started is recorded ``skipped``, reason
``Replaced``, as a retry abandoned so is: it was recorded ``failed`` ("stopped before it
started: Replaced", no start), and counted as a failure for lastFailureTime, failure
notifications, alerts and failedRunsHistoryLimit, though nothing of it ran.

It happens to a run that waits for the run it replaces (whose command ignores SIGTERM) when a
newer slot replaces it in turn (``LateStarts._waited``), to a run decided ahead of its slot that
a manual run replaces before its claim is back (``_late``) or while its command waits for the
slot (``RunExecution._run_attempt``). Real commands; the old run ends when the test says so (a
gate file stands for its kill grace's SIGKILL), so no wait is timed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.controller.dispatch import Dispatcher
from reconciler.core.desired import Definition
from reconciler.core.runs import RunRecord, RunStatus, run_id
from reconciler.store import MemoryRunStore
from tests.controller.test_dispatch_waited import SlowClaims
from tests.controller.test_policies import until
from tests.helpers import definition, local_actions

SLOT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEY = "default/job"
REPLACED = "a newer run of the task replaced the run while this run waited; it did not start"


def stubborn(tmp_path: Path, first: datetime) -> Definition:
    """A Replace task whose run of ``first`` ignores SIGTERM and goes on until the file
    ``gate`` exists (``up`` says it is going); every other run leaves ``ran.<run id>``."""
    script = (
        f'if [ "$CRONTASK_RUN_ID" = "{run_id(KEY, first)}" ]; then '
        f"trap '' TERM; touch {tmp_path}/up; "
        f"while [ ! -e {tmp_path}/gate ]; do sleep 0.02; done; "
        f'else touch "{tmp_path}/ran.$CRONTASK_RUN_ID"; fi'
    )
    return definition("job", command={"args": ["sh", "-c", script]}, concurrencyPolicy="Replace")


def dispatcher(store: MemoryRunStore, now: datetime) -> tuple[Dispatcher, list[RunRecord]]:
    """A dispatcher whose clock reads ``now``, with a kill grace the tests never wait out, and
    the records its listeners heard."""
    d = Dispatcher(store, owner="host:1:abc", clock=lambda: now, actions=local_actions(30))
    heard: list[RunRecord] = []
    d.subscribe(heard.append)
    return d, heard


def ran(tmp_path: Path, at: datetime) -> bool:
    return (tmp_path / f"ran.{run_id(KEY, at)}").exists()


def assert_skipped_replaced(record: RunRecord | None, heard: list[RunRecord]) -> None:
    assert record is not None
    assert (record.status, record.reason, record.started_at) == (
        RunStatus.SKIPPED,
        "Replaced",
        None,
    )
    assert record.message == REPLACED
    # The listeners (metrics, notifier) heard it skipped, never failed nor running.
    assert [r.status for r in heard if r.id == record.id] == [RunStatus.SKIPPED]


def test_a_run_waiting_for_the_run_it_replaces_then_replaced_itself_is_skipped(
    tmp_path: Path,
) -> None:
    first, second, third = (SLOT + timedelta(minutes=n) for n in range(3))
    job = stubborn(tmp_path, first)
    store = MemoryRunStore()

    async def scenario() -> list[RunRecord]:
        d, heard = dispatcher(store, SLOT)
        d.fire(job, first)
        await until((tmp_path / "up").exists)
        d.fire(job, second)  # stops the first, which ignores it: the second waits
        d.fire(job, third)  # replaces both: the second never started
        (tmp_path / "gate").touch()  # the first run ends (its SIGKILL, after the grace)
        assert await d.drain(10)
        await d.shutdown(0)
        return heard

    heard = asyncio.run(scenario())
    assert_skipped_replaced(store.get(run_id(KEY, second)), heard)
    assert not ran(tmp_path, second)
    old, new = store.get(run_id(KEY, first)), store.get(run_id(KEY, third))
    assert old is not None
    assert (old.status, old.reason) == (RunStatus.FAILED, "Replaced")  # it did run
    assert new is not None
    assert new.status is RunStatus.SUCCEEDED
    assert ran(tmp_path, third)


def ahead_replaced(tmp_path: Path, store: MemoryRunStore, stop_when: Callable[..., bool]) -> None:
    """A run decided a second ahead of its slot (the dispatcher's clock reads a second
    before it), replaced by a manual run once ``stop_when(d)`` holds, before its slot."""
    job = stubborn(tmp_path, SLOT - timedelta(days=1))  # no run of the test ignores SIGTERM
    now = SLOT - timedelta(seconds=1)

    async def scenario() -> tuple[list[RunRecord], RunRecord]:
        d, heard = dispatcher(store, now)
        assert d.fire(job, SLOT).status is RunStatus.RUNNING  # decided and claimed ahead
        await until(lambda: stop_when(d))
        manual = d.fire_manual(job)  # Replace: stops the scheduled run; runs once it ended
        if isinstance(store, SlowClaims):
            store.answer.set()
        assert await d.drain(10)
        await d.shutdown(0)
        return heard, manual

    heard, manual = asyncio.run(scenario())
    assert_skipped_replaced(store.get(run_id(KEY, SLOT)), heard)
    assert not ran(tmp_path, SLOT)
    ended = store.get(manual.id)
    assert ended is not None
    assert ended.status is RunStatus.SUCCEEDED
    assert ran(tmp_path, manual.scheduled_at)


def test_a_run_replaced_while_its_command_waits_for_its_slot_is_skipped(tmp_path: Path) -> None:
    def waiting_for_its_slot(d: Dispatcher) -> bool:
        # Its command's attempt is made: the loop has handed it its slot to wait for.
        active = d._active.get(KEY, {}).get(run_id(KEY, SLOT))
        return active is not None and active.attempt is not None

    ahead_replaced(tmp_path, MemoryRunStore(), waiting_for_its_slot)


def test_a_run_replaced_before_its_claim_came_back_is_skipped(tmp_path: Path) -> None:
    store = SlowClaims()  # its claim is answered once the manual run has replaced it
    ahead_replaced(tmp_path, store, lambda d: store.asked.is_set())
