"""A second stop signal (Ctrl-C again) stops the running commands at once (README): SIGKILL,
not SIGTERM and the rest of the kill grace, whether it comes during the shutdown grace or
during the kill grace after it. Each run still ends with its record: ``interrupted``, reason
Shutdown, a message that says the stop was hurried. Real commands that ignore SIGTERM, the
in-memory run store."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.controller.dispatch import HURRIED, HURRIED_LEFTOVERS, Dispatcher
from reconciler.core.runs import RunRecord, RunStatus, run_id
from reconciler.runner import command
from reconciler.store import MemoryRunStore
from tests.helpers import definition, local_actions

SLOT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KILL_GRACE = 120.0  # far longer than the test may take: only SIGKILL ends these commands
BOUND = 20.0


async def until(path: Path) -> int:
    while not (path.exists() and path.read_text().strip()):
        await asyncio.sleep(0.01)
    return int(path.read_text())


def stubborn(tmp_path: Path) -> tuple[Dispatcher, MemoryRunStore, Path]:
    store = MemoryRunStore()
    d = Dispatcher(
        store,
        owner="host:1:abc",
        clock=lambda: SLOT,
        actions=local_actions(kill_grace=KILL_GRACE),
    )
    return d, store, tmp_path / "pid"


def _command(pid_file: Path, term_file: Path) -> list[str]:
    # SIGTERM is noted and otherwise ignored, by the shell and by what it waits for.
    script = f"trap 'echo > {term_file}' TERM; echo $$ > {pid_file}; while :; do sleep 0.05; done"
    return ["sh", "-c", script]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _check(store: MemoryRunStore, pid: int) -> None:
    record = store.get(run_id("default/job", SLOT))
    assert record is not None
    assert (record.status, record.reason) == (RunStatus.INTERRUPTED, "Shutdown")
    assert record.message is not None
    assert "asked again to stop: killed at once, without the kill grace" in record.message
    assert "grace period" not in record.message  # no SIGKILL after a grace: at once
    assert _gone(pid)


def test_a_second_signal_during_the_shutdown_grace_kills_the_commands_at_once(
    tmp_path: Path,
) -> None:
    d, store, pid_file = stubborn(tmp_path)
    job = definition("job", command={"args": _command(pid_file, tmp_path / "term")})
    pid = 0

    async def scenario() -> None:
        nonlocal pid
        d.fire(job, SLOT)
        pid = await until(pid_file)
        hurry = asyncio.Event()
        shutdown = asyncio.ensure_future(d.shutdown(600.0, hurry))
        await asyncio.sleep(0)
        hurry.set()  # a second Ctrl-C
        await asyncio.wait_for(shutdown, BOUND)

    try:
        asyncio.run(scenario())
        _check(store, pid)
    finally:
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def test_a_second_signal_during_the_kill_grace_kills_the_commands_at_once(
    tmp_path: Path,
) -> None:
    d, store, pid_file = stubborn(tmp_path)
    term = tmp_path / "term"
    job = definition("job", command={"args": _command(pid_file, term)})
    pid = 0

    async def scenario() -> None:
        nonlocal pid
        d.fire(job, SLOT)
        pid = await until(pid_file)
        hurry = asyncio.Event()
        # No shutdown grace: the command is stopped at once, and ignores its SIGTERM.
        shutdown = asyncio.ensure_future(d.shutdown(0.0, hurry))
        while not term.exists():
            await asyncio.sleep(0.01)
        hurry.set()
        await asyncio.wait_for(shutdown, BOUND)

    try:
        asyncio.run(scenario())
        _check(store, pid)
    finally:
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def test_a_command_reaped_while_its_record_is_written_is_not_signalled_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reaped command's pid may name another process by now (the kernel reuses pids): the
    second signal's kills, repeated while runs are in flight, pass over a run whose process
    has exited and whose record is only being written."""

    class HeldWrites(MemoryRunStore):
        def __init__(self) -> None:
            super().__init__()
            self.entered, self.release = threading.Event(), threading.Event()

        def save_many(self, records: Sequence[RunRecord]) -> list[RunRecord]:
            if any(r.status.finished for r in records):
                self.entered.set()
                self.release.wait(BOUND)
            return super().save_many(records)

    store = HeldWrites()
    d = Dispatcher(store, owner="host:1:abc", clock=lambda: SLOT, actions=local_actions())
    signalled: list[int] = []
    monkeypatch.setattr(command, "signal_session", lambda pid, *a, **k: signalled.append(pid))
    passes = threading.Semaphore(0)
    kill_now = Dispatcher._kill_now

    def counted(self: Dispatcher) -> None:
        kill_now(self)
        passes.release()

    monkeypatch.setattr(Dispatcher, "_kill_now", counted)
    job = definition("job", command={"args": ["true"]})

    async def scenario() -> None:
        d.fire(job, SLOT)
        while not store.entered.is_set():  # the command has exited; its record is held
            await asyncio.sleep(0.01)
        hurry = asyncio.Event()
        hurry.set()
        shutdown = asyncio.ensure_future(d.shutdown(600.0, hurry))
        while not passes.acquire(blocking=False):  # at least one pass of the kills
            await asyncio.sleep(0.01)
        store.release.set()
        await asyncio.wait_for(shutdown, BOUND)

    asyncio.run(scenario())
    assert signalled == []
    record = store.get(run_id("default/job", SLOT))
    assert record is not None
    assert record.status is RunStatus.SUCCEEDED


def test_a_second_signal_that_kills_only_what_a_finished_command_left_says_so(
    tmp_path: Path,
) -> None:
    """The command succeeded; a child it left ignores SIGTERM, so its termination is in its
    kill grace when the second signal comes: the record says what it left was killed at
    once, not that the run was."""
    d, store, pid_file = stubborn(tmp_path)
    term = tmp_path / "term"
    child = f"(trap 'echo 1 > {term}' TERM; echo $$ > {pid_file}; while :; do sleep 0.05; done)"
    job = definition("job", command={"args": ["sh", "-c", f"{child} & echo done; exit 0"]})

    async def scenario() -> None:
        d.fire(job, SLOT)
        await asyncio.wait_for(until(term), BOUND)  # what it left is being terminated
        hurry = asyncio.Event()
        hurry.set()
        await asyncio.wait_for(d.shutdown(600.0, hurry), BOUND)

    try:
        asyncio.run(scenario())
        record = store.get(run_id("default/job", SLOT))
        assert record is not None
        assert record.message is not None
        assert (record.status, record.exit_code) == (RunStatus.SUCCEEDED, 0)
        assert HURRIED_LEFTOVERS in record.message, record.message
        assert HURRIED not in record.message, record.message
    finally:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
