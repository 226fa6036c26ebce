"""Under ``Forbid`` a slot decided in the same turn of the loop as a run's exit, before the loop
has read that exit (crontask resumed from SIGSTOP: the scheduler's late timer and the run's
pidfd are ready together), runs: the run had ended, and its end is recorded within
``LET_GO_AFTER``, or it is let go then. A process still running holds its task, as before; a
change of the task (a suspend too) or crontask's stop decides the waiting slot at once. Real
processes, a real SQLite store; the loop is held by the test itself, as a SIGSTOP holds it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.controller import ended_runs, stops
from reconciler.controller.active import TASK_REMOVED
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.late_starts import FORBID
from reconciler.controller.reconcile import account_for_slots
from reconciler.core.desired import Definition
from reconciler.core.plan import Operation, Step
from reconciler.core.runs import RunRecord, RunStatus, run_id
from reconciler.runner.command import CommandRun
from reconciler.runner.process import has_exited
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.store import RunStore, open_store, sqlite_url
from tests.helpers import definition, local_actions

T0 = datetime(2026, 12, 7, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=5)
OWNER = "a:1:boot"
WAIT = 20.0


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[RunStore]:
    opened = open_store(sqlite_url(tmp_path / "state"), writer=True)
    yield opened
    opened.close()


def job(folder: Path, **spec: Any) -> Definition:
    """A Forbid task whose command writes its pid, then exits once ``go`` exists."""
    script = f"echo $$ > {folder}/pid; while [ ! -e {folder}/go ]; do sleep 0.01; done"
    return definition(
        "fb",
        schedule="*/5 * * * * *",
        command={"args": ["sh", "-c", script]},
        concurrencyPolicy="Forbid",
        **spec,
    )


async def started(d: Dispatcher, folder: Path) -> int:
    """The pid of the run's process, once it has written it and the loop has its spawn: on a
    loaded machine the command can run before, and the run is not yet a command to look at."""
    deadline = time.monotonic() + WAIT
    while not (text := _read(folder / "pid")).endswith("\n") or not _spawned(d, int(text)):
        assert time.monotonic() < deadline, "the command did not start"
        await asyncio.sleep(0.01)
    return int(text)


def _spawned(d: Dispatcher, pid: int) -> bool:
    runs = (a.attempt for by_id in d._active.values() for a in by_id.values())
    return any(isinstance(attempt, CommandRun) and attempt.pid == pid for attempt in runs)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def exit_unheard(folder: Path, pid: int) -> None:
    """Let the command exit while the loop is held (this call blocks it, as a SIGSTOP would),
    and return once the kernel has it exited: the loop has not read its pidfd yet."""
    (folder / "go").touch()
    deadline = time.monotonic() + WAIT
    while not has_exited(pid):
        assert time.monotonic() < deadline, "the command did not exit"
        time.sleep(0.001)


def stored(store: RunStore, key: str, slot: datetime) -> RunRecord:
    record = store.get(run_id(key, slot))
    assert record is not None, slot
    return record


def test_a_slot_decided_as_the_previous_run_s_exit_is_unheard_runs(
    sqlite: RunStore, tmp_path: Path
) -> None:
    """At wake-up the slot fired before the exit was read: it was skipped ``ConcurrencyForbid``
    "previous run still running" for a run whose process had ended."""
    task = job(tmp_path)

    async def main() -> None:
        d = Dispatcher(sqlite, owner=OWNER, actions=local_actions())
        d.fire(task, T0)
        pid = await started(d, tmp_path)
        exit_unheard(tmp_path, pid)
        following = d.fire(task, T1)
        assert following.status is RunStatus.RUNNING, following.message
        assert await d.drain(WAIT)
        await d.shutdown(0)

    asyncio.run(main())
    key = task.key
    assert stored(sqlite, key, T0).status is RunStatus.SUCCEEDED
    assert stored(sqlite, key, T1).status is RunStatus.SUCCEEDED


def test_a_process_still_running_holds_its_task_at_once(sqlite: RunStore, tmp_path: Path) -> None:
    task = job(tmp_path)

    async def main() -> RunRecord:
        d = Dispatcher(sqlite, owner=OWNER, actions=local_actions())
        d.fire(task, T0)
        await started(d, tmp_path)
        following = d.fire(task, T1)
        (tmp_path / "go").touch()
        assert await d.drain(WAIT)
        await d.shutdown(0)
        return following

    following = asyncio.run(main())
    assert (following.status, following.reason) == (RunStatus.SKIPPED, FORBID)
    assert "previous run still running" in (following.message or "")
    assert stored(sqlite, task.key, T1).reason == FORBID


def test_a_task_removed_while_its_slot_waits_has_the_slot_decided_at_once(
    sqlite: RunStore, tmp_path: Path
) -> None:
    """Decided as the change comes (``cancel_retries``), not after it, under the definition it
    was handed over with: here the ended run is still unheard, so the slot is skipped."""
    task = job(tmp_path)

    async def main() -> None:
        d = Dispatcher(sqlite, owner=OWNER, actions=local_actions())
        d.fire(task, T0)
        exit_unheard(tmp_path, await started(d, tmp_path))
        d.fire(task, T1)
        assert d.awaits_ends(task.key, run_id(task.key, T1))
        d.cancel_retries(task.key, TASK_REMOVED)
        assert not d.awaits_ends(task.key, run_id(task.key, T1))
        assert await d.drain(WAIT)
        await d.shutdown(0)

    asyncio.run(main())
    assert stored(sqlite, task.key, T0).status is RunStatus.SUCCEEDED
    assert stored(sqlite, task.key, T1).reason == FORBID


def test_a_task_suspended_while_its_slot_waits_does_not_run_it(
    sqlite: RunStore, tmp_path: Path
) -> None:
    """A suspend stops no retry (``cancel_retries`` is not called): the slot waiting started a
    run after the suspension. As reconcile.py applies the step: ``before_change``, then the
    slots' accounting. The ended run is still unheard then: the slot is skipped."""
    task, suspended = job(tmp_path), job(tmp_path, suspend=True)

    async def main() -> None:
        d = Dispatcher(sqlite, owner=OWNER, actions=local_actions())
        d.fire(task, T0)
        exit_unheard(tmp_path, await started(d, tmp_path))
        d.fire(task, T1)
        assert d.awaits_ends(task.key, run_id(task.key, T1))
        d.before_change(task.key, changed=True)
        step = Step(Operation.UPDATE, task.key, suspended, task)
        account_for_slots([step], MemoryScheduler(lambda k, at: None, T0), d, T1)
        assert not d.awaits_ends(task.key, run_id(task.key, T1))
        assert await d.drain(WAIT)
        await d.shutdown(0)

    asyncio.run(main())
    assert stored(sqlite, task.key, T0).status is RunStatus.SUCCEEDED
    assert stored(sqlite, task.key, T1).reason == FORBID


def test_a_stop_while_a_slot_waits_gives_it_its_skip(sqlite: RunStore, tmp_path: Path) -> None:
    """Crontask stops (SIGTERM) while the slot waits: it had no record until the next start."""
    task = job(tmp_path)

    async def main() -> None:
        d = Dispatcher(sqlite, owner=OWNER, actions=local_actions())
        d.fire(task, T0)
        exit_unheard(tmp_path, await started(d, tmp_path))
        d.fire(task, T1)
        await d.shutdown(WAIT)

    asyncio.run(main())
    assert stored(sqlite, task.key, T0).status is RunStatus.SUCCEEDED
    assert stored(sqlite, task.key, T1).reason == FORBID


def test_a_slot_waits_for_a_run_let_go_after_its_own_wait(
    sqlite: RunStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store does not take the ended run's record; the run is let go (``_save_end``) later
    than the decision's own ``LET_GO_AFTER`` (here made longer, as a run that awaits anything
    between hearing its exit and its end record makes it): the decision follows the run's
    leaving, not its task's end, nor its own timer. It skipped the slot before."""
    monkeypatch.setattr(stops, "LET_GO_AFTER", 1.0)
    monkeypatch.setattr(ended_runs, "_MARGIN", WAIT, raising=False)
    task = job(tmp_path)
    released = threading.Event()
    save_many = sqlite.save_many

    def held(records: Sequence[RunRecord]) -> None:
        if any(r.status is RunStatus.SUCCEEDED for r in records):
            released.wait(WAIT)  # in the recorder's thread: the loop goes on
        save_many(records)

    monkeypatch.setattr(sqlite, "save_many", held)

    async def main() -> None:
        d = Dispatcher(sqlite, owner=OWNER, actions=local_actions())
        d.fire(task, T0)
        exit_unheard(tmp_path, await started(d, tmp_path))
        d.fire(task, T1)
        assert d.awaits_ends(task.key, run_id(task.key, T1))
        deadline = time.monotonic() + WAIT
        while d.awaits_ends(task.key, run_id(task.key, T1)):
            assert time.monotonic() < deadline, "the slot was not decided"
            await asyncio.sleep(0.01)
        released.set()
        assert await d.drain(WAIT)
        await d.shutdown(0)

    asyncio.run(main())
    assert stored(sqlite, task.key, T0).status is RunStatus.SUCCEEDED
    assert stored(sqlite, task.key, T1).status is RunStatus.SUCCEEDED
