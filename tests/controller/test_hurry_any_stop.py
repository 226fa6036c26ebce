"""A second stop signal kills at once a command already being stopped for another reason (its
timeout, a ``Replace``), and its record says so (README: "their records say so"), as it does
for a run stopped by the shutdown itself (``test_shutdown_hurry``). Real commands that ignore
SIGTERM, the in-memory run store."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.controller.dispatch import HURRIED, Dispatcher
from reconciler.core.runs import RunRecord, RunStatus, run_id
from reconciler.store import MemoryRunStore
from tests.helpers import definition, local_actions

SLOT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KILL_GRACE = 120.0  # far longer than the test may take: only SIGKILL ends these commands
BOUND = 20.0


def _command(pid_file: Path, term_file: Path) -> list[str]:
    # SIGTERM is noted and otherwise ignored, by the shell and by what it waits for.
    trap = f"trap 'echo term > {term_file}' TERM"
    script = f"{trap}; echo $$ > {pid_file}; while :; do sleep 0.05; done"
    return ["sh", "-c", script]


async def _until(path: Path) -> None:
    while not (path.exists() and path.read_text().strip()):
        await asyncio.sleep(0.01)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _hurried(store: MemoryRunStore, slot: datetime) -> RunRecord:
    record = store.get(run_id("default/job", slot))
    assert record is not None
    assert record.message is not None
    assert HURRIED in record.message, record.message
    assert "grace period" not in record.message  # no SIGKILL after a grace: at once
    return record


def _kill(pid_file: Path) -> None:
    if pid_file.exists() and pid_file.read_text().strip():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)


def test_a_timed_out_command_killed_by_a_second_signal_says_so(tmp_path: Path) -> None:
    store = MemoryRunStore()
    d = Dispatcher(store, owner="h:1:a", clock=lambda: SLOT, actions=local_actions(KILL_GRACE))
    pid_file, term = tmp_path / "pid", tmp_path / "term"
    job = definition("job", timeoutSeconds=1, command={"args": _command(pid_file, term)})

    async def scenario() -> None:
        d.fire(job, SLOT)
        await asyncio.wait_for(_until(term), BOUND)  # timed out: in its kill grace now
        hurry = asyncio.Event()
        hurry.set()  # the first signal, then the second at once
        await asyncio.wait_for(d.shutdown(600.0, hurry), BOUND)

    try:
        asyncio.run(scenario())
        record = _hurried(store, SLOT)
        assert (record.status, record.reason) == (RunStatus.TIMED_OUT, "DeadlineExceeded")
        assert record.exit_code == 128 + signal.SIGKILL
        assert _gone(int(pid_file.read_text()))
    finally:
        _kill(pid_file)


def test_a_replaced_command_killed_by_a_second_signal_says_so(tmp_path: Path) -> None:
    store = MemoryRunStore()
    d = Dispatcher(store, owner="h:1:a", clock=lambda: SLOT, actions=local_actions(KILL_GRACE))
    pid_file, term = tmp_path / "pid", tmp_path / "term"
    job = definition("job", concurrencyPolicy="Replace", command={"args": _command(pid_file, term)})

    async def scenario() -> None:
        d.fire(job, SLOT)
        await asyncio.wait_for(_until(pid_file), BOUND)
        d.fire(job, SLOT + timedelta(minutes=1))  # replaces the first: SIGTERM, ignored
        await asyncio.wait_for(_until(term), BOUND)
        hurry = asyncio.Event()
        hurry.set()
        await asyncio.wait_for(d.shutdown(600.0, hurry), BOUND)

    try:
        asyncio.run(scenario())
        record = _hurried(store, SLOT)
        assert (record.status, record.reason) == (RunStatus.FAILED, "Replaced")
        assert record.exit_code == 128 + signal.SIGKILL
        assert _gone(int(pid_file.read_text()))
    finally:
        _kill(pid_file)
