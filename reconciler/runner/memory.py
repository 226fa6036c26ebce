"""The in-memory twin of an action, for tests and benchmarks: attempts that do no work.

Each attempt is recorded and waits until it is finished from outside (``finish``), stopped
(``stop``, which ends it ``FAILED`` with the reason, as a real action does), or, with
``auto``, finishes at once with that outcome. It honours the whole :class:`Attempt` contract,
so policy tests (Forbid, Replace, retries, shutdown) need no processes.
"""

from __future__ import annotations

import asyncio
import dataclasses

from reconciler.core.desired import Definition
from reconciler.core.runs import RunRecord, RunStatus
from reconciler.runner.base import Outcome, failed

SUCCESS = Outcome(RunStatus.SUCCEEDED, 0, None, "exit code 0", "")


@dataclasses.dataclass(eq=False)
class ScriptedAttempt:
    record: RunRecord
    auto: Outcome | None = None
    started: bool = False
    ended: bool = False
    stopped: str | None = None
    _outcome: asyncio.Future[Outcome] | None = None

    async def run(self) -> Outcome:
        if self.stopped is not None:
            self.ended = True
            return failed(self.stopped, f"stopped before it started: {self.stopped}")
        self.started = True
        try:
            if self.auto is not None:
                return self.auto
            self._outcome = asyncio.get_running_loop().create_future()
            return await self._outcome
        finally:
            self.ended = True

    def stop(self, reason: str) -> None:
        if self.stopped is None:
            self.stopped = reason
            self.finish(failed(reason, f"stopped: {reason}"))

    def finish(self, outcome: Outcome = SUCCESS) -> None:
        if self._outcome is not None and not self._outcome.done():
            self._outcome.set_result(outcome)


class ScriptedAction:
    def __init__(self, field: str = "command", *, auto: Outcome | None = None) -> None:
        self.field = field
        self.auto = auto
        self.attempts: list[ScriptedAttempt] = []

    def attempt(self, definition: Definition, record: RunRecord) -> ScriptedAttempt:
        attempt = ScriptedAttempt(record, self.auto)
        self.attempts.append(attempt)
        return attempt

    def running(self) -> list[ScriptedAttempt]:
        return [a for a in self.attempts if a.started and not a.ended]
