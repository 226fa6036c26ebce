"""A second stop signal's note says what its SIGKILL ended (``CommandRun.kill_now``): the
run's command (``HURRIED``), only what the command left behind (``HURRIED_LEFTOVERS``), or
nothing that was being terminated (no note). A command that exited by itself was not killed,
whenever the signal comes: after its own SIGTERM handler ended it, before crontask's
terminator looked again, or while what it left is given its moment to leave (``_SETTLE``).
Real commands, the in-memory run store."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.controller.dispatch import HURRIED, HURRIED_LEFTOVERS, Dispatcher
from reconciler.core.runs import RunStatus, run_id
from reconciler.runner import command
from reconciler.runner.command import CommandRun, Cut
from reconciler.store import MemoryRunStore
from tests.helpers import definition, local_actions

SLOT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KILL_GRACE = 120.0  # far longer than the test may take: only SIGKILL ends what ignores TERM
BOUND = 20.0


def _until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition`` without letting the event loop run (it is blocked on purpose:
    neither the run's reaper nor its terminator may move meanwhile)."""
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, "the condition never came"
        time.sleep(0.005)


async def _until_async(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)


def _zombie(pid: int) -> bool:
    """Exited, not reaped yet (the run's ``Child`` reaps it on the loop)."""
    with contextlib.suppress(FileNotFoundError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] == "Z"
    return False


def _text(path: Path) -> str:
    return path.read_text().strip() if path.exists() else ""


def _kill_group(pid_file: Path) -> None:
    if _text(pid_file):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(_text(pid_file)), signal.SIGKILL)


def test_a_command_that_ended_itself_on_sigterm_was_not_killed(tmp_path: Path) -> None:
    """Its SIGTERM handler exits 3; the second signal comes after that exit, before the
    terminator's next look: the kill ends nothing that was being terminated."""
    pid_file = tmp_path / "pid"
    script = f"trap 'exit 3' TERM; echo $$ > {pid_file}; while :; do sleep 0.02; done"
    run = CommandRun(["sh", "-c", script], env=dict(os.environ), kill_grace=KILL_GRACE)

    async def scenario() -> tuple[Cut | None, int | None]:
        task = asyncio.ensure_future(run.run())
        # Its pid known on the loop too, not only written by the shell: a stop before the
        # spawner's answer reached the loop sends no SIGTERM (and the wait below, which blocks
        # the loop, would keep that answer away for good).
        await asyncio.wait_for(run.started.wait(), BOUND)
        await asyncio.wait_for(_until_async(lambda: bool(_text(pid_file))), BOUND)
        run.stop("Replaced")
        await asyncio.sleep(0)  # the terminator's first step: SIGTERM, then it sleeps
        pid = int(_text(pid_file))
        _until(lambda: _zombie(pid))  # exited by itself; the loop has not heard of it
        run.kill_now(fresh_since=time.monotonic())
        outcome = await asyncio.wait_for(task, BOUND)
        return run.cut, outcome.exit_code

    try:
        cut, exit_code = asyncio.run(scenario())
        assert cut is None
        assert exit_code == 3
    finally:
        _kill_group(pid_file)


def test_a_second_signal_while_what_it_left_settles_adds_no_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command exited 0 by itself; what it left is still given its moment to leave, so
    nothing was told to end: the kill cuts no termination short."""
    monkeypatch.setattr(command, "_SETTLE", KILL_GRACE)  # the moment lasts until the kill
    pid_file = tmp_path / "pid"
    script = f"sleep 600 & echo $$ > {pid_file}; exit 0"
    run = CommandRun(["sh", "-c", script], env=dict(os.environ), kill_grace=KILL_GRACE)

    async def scenario() -> tuple[Cut | None, str]:
        task = asyncio.ensure_future(run.run())
        await asyncio.wait_for(_until_async(lambda: run._settling), BOUND)
        run.kill_now(fresh_since=time.monotonic())
        outcome = await asyncio.wait_for(task, BOUND)
        return run.cut, outcome.status.value

    try:
        cut, status = asyncio.run(scenario())
        assert cut is None
        assert status == RunStatus.SUCCEEDED.value
    finally:
        _kill_group(pid_file)


def test_a_replaced_command_that_exited_by_itself_says_only_its_leftovers_were_killed(
    tmp_path: Path,
) -> None:
    """Replaced, its shell exits 3 on SIGTERM, a child of it ignores SIGTERM: the second
    signal kills that child, not the run, and the record says so."""
    store = MemoryRunStore()
    d = Dispatcher(store, owner="h:1:a", clock=lambda: SLOT, actions=local_actions(KILL_GRACE))
    pid_file, child_file, bye = tmp_path / "pid", tmp_path / "child", tmp_path / "bye"
    child = f"(trap '' TERM; echo x > {child_file}; while :; do sleep 0.05; done) &"
    main = f"trap 'echo > {bye}; exit 3' TERM; echo $$ > {pid_file}; while :; do sleep 0.02; done"
    script = f"{child} {main}"
    job = definition("job", concurrencyPolicy="Replace", command={"args": ["sh", "-c", script]})

    async def scenario() -> None:
        d.fire(job, SLOT)
        await asyncio.wait_for(
            _until_async(lambda: bool(_text(pid_file) and _text(child_file))), BOUND
        )
        d.fire(job, SLOT + timedelta(minutes=1))  # replaces the first: SIGTERM
        await asyncio.wait_for(_until_async(bye.exists), BOUND)
        pid = int(_text(pid_file))
        await asyncio.wait_for(_until_async(lambda: not Path(f"/proc/{pid}").exists()), BOUND)
        hurry = asyncio.Event()
        hurry.set()
        await asyncio.wait_for(d.shutdown(600.0, hurry), BOUND)

    try:
        asyncio.run(scenario())
        record = store.get(run_id("default/job", SLOT))
        assert record is not None
        assert record.message is not None
        assert (record.status, record.reason, record.exit_code) == (
            RunStatus.FAILED,
            "Replaced",
            3,
        )
        assert HURRIED_LEFTOVERS in record.message, record.message
        assert HURRIED not in record.message, record.message
    finally:
        _kill_group(pid_file)
