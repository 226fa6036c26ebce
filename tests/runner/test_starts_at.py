"""``starts_at``: the check of ``StartsAt`` kept per class; and ``CommandRun.run()``'s answer from
its supervising task (a shield without the shield's callbacks)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Callable

import pytest

from reconciler.runner.base import Outcome, StartsAt, starts_at
from reconciler.runner.command import CommandRun

ENV = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C.UTF-8"}


class Plain:
    async def run(self) -> Outcome:
        raise AssertionError("not run")

    def stop(self, reason: str) -> None:
        pass


class Timed(Plain):
    def start_at(
        self, when: float | None, began: Callable[[float], None], until: float | None = None
    ) -> None:
        pass


def test_starts_at_answers_as_isinstance_for_classes_and_for_one_instance() -> None:
    command = CommandRun(["true"], env=ENV)
    for attempt in (command, command, Timed(), Timed(), Plain(), Plain(), None):
        assert starts_at(attempt) is isinstance(attempt, StartsAt)
    assert starts_at(command)
    assert starts_at(Timed())
    assert not starts_at(Plain())
    # An instance given start_at of its own is one; its class, and so the next, is not.
    odd = Plain()
    odd.start_at = lambda *args: None  # type: ignore[attr-defined]
    assert starts_at(odd) is isinstance(odd, StartsAt) is True
    assert starts_at(Plain()) is isinstance(Plain(), StartsAt) is False


def test_an_error_of_the_supervision_reaches_run_and_is_logged_nowhere(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken() -> Outcome:
        await asyncio.sleep(0)
        raise RuntimeError("supervision bug")

    async def scenario() -> None:
        command = CommandRun(["true"], env=ENV)
        command._supervise = broken  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="supervision bug"):
            await command.run()

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(scenario())
        gc.collect()  # a task whose error nobody retrieved says so when collected
    assert not [r for r in caplog.records if r.name == "asyncio"]


def test_an_error_of_the_supervision_after_run_was_cancelled_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """run() cancelled has no one to tell: the error is logged, as asyncio logged the shielded
    task's that nobody retrieved."""

    async def scenario() -> None:
        go_on = asyncio.Event()

        async def late() -> Outcome:
            await go_on.wait()
            raise RuntimeError("late boom")

        command = CommandRun(["true"], env=ENV)
        command._supervise = late  # type: ignore[method-assign]
        running = asyncio.ensure_future(command.run())
        await asyncio.sleep(0)  # run() awaits its answer now
        running.cancel()
        await asyncio.sleep(0)  # the cancellation reached run(), which waits for the task
        go_on.set()
        with pytest.raises(asyncio.CancelledError):
            await running

    with caplog.at_level(logging.ERROR):
        asyncio.run(scenario())
    (logged,) = [r for r in caplog.records if r.name == "crontask.runner"]
    assert logged.getMessage() == "supervising a cancelled command failed"
    assert logged.exc_info is not None
    assert "late boom" in str(logged.exc_info[1])
