"""The notifier routes on its own component, giving the event loop a turn every
``YIELD_EVERY`` errors or runs: 20 000 new definition errors (a committer's broken files, or
every error at start-up) or 10 000 runs ending together, with 200 routes, must not hold the
loop (runs would start late, ``/healthz`` would not answer). Measured in work done between
two turns of the loop (a probe task that runs at each turn), not in seconds; and the messages
that go out are those the routes' rule (``matches``, a glob per route) says."""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.core.desired import DefinitionError, DesiredState, Location
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import ERRORS_PER_MESSAGE, Notifier
from reconciler.sinks.notify_config import parse
from reconciler.sinks.notify_errors import YIELD_EVERY
from tests.notify.receiver import receiving
from tests.notify.test_notifier import running, until

RECEIVERS = 50
ROUTES = 200
TEAMS = 400  # tasks of teams 0-199 are matched by a route, those of 200-399 by none
T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)


def notifier(tmp_path: Path, url: str, event: str, mine: Callable[[str], bool]) -> Notifier:
    receivers = "\n".join(
        f"  - {{name: r{i}, type: generic, url: '{url}/r{i}'}}" for i in range(RECEIVERS)
    )
    routes = "\n".join(
        f"  - {{receiver: r{i % RECEIVERS}, events: [{event}], match: {{name: 'team{i}-*'}}}}"
        for i in range(ROUTES)
    )
    text = f"receivers:\n{receivers}\nroutes:\n{routes}\n"
    return Notifier(parse(text, str(tmp_path / "n.yaml"), tmp_path), metrics=Metrics(), mine=mine)


class Probe:
    """A task that runs at each turn of the event loop and notes the most ``work()`` done
    between two of its turns."""

    def __init__(self, work: Callable[[], int]) -> None:
        self.work = work
        self.most = 0
        self._last = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Probe:
        self._task = asyncio.create_task(self._turns())
        await asyncio.sleep(0)  # its first turn
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self._turn()  # the work done since its last turn

    async def _turns(self) -> None:
        self._last = self.work()
        while True:
            await asyncio.sleep(0)
            self._turn()

    def _turn(self) -> None:
        now = self.work()
        self.most = max(self.most, now - self._last)
        self._last = now


def receivers() -> dict[int, str]:
    """The receiver whose route takes a task of each team (the routes' rule, by hand)."""
    return {
        team: f"r{i % RECEIVERS}"
        for team in range(TEAMS)
        for i in range(ROUTES)
        if fnmatch.fnmatchcase(f"team{team}-x", f"team{i}-*")
    }


def team(key: str) -> int:
    return int(key.split("/team")[1].split("-")[0])


def test_twenty_thousand_new_errors_do_not_hold_the_loop(tmp_path: Path) -> None:
    asked: list[str] = []

    def mine(key: str) -> bool:
        asked.append(key)  # once per error, as it is routed
        return True

    errors = [
        DefinitionError(
            Location("file", f"tasks/f{n // 20:04}.yaml", n % 20 * 5 + 1, 1),
            "spec.schedule: bad",
            f"default/team{n % TEAMS}-x{n}",
        )
        for n in range(20_000)
    ]
    expected: dict[str, list[str]] = {}
    routed = receivers()
    for error in sorted(errors, key=str):  # a message lists its errors by line
        name = routed.get(team(error.key or ""))
        if name is not None:
            expected.setdefault(name, []).append(str(error))
    assert len(expected) == RECEIVERS
    with receiving() as receiver:
        notifier_ = notifier(tmp_path, receiver.url, "definitionError", mine)

        async def body() -> None:
            async with Probe(lambda: len(asked)) as probe:
                notifier_.after_pass(DesiredState({}, errors=tuple(errors)))
                await until(receiver, RECEIVERS)
            assert len(asked) == len(errors)
            assert probe.most <= YIELD_EVERY

        running(notifier_, body)
    assert len(receiver.received) == RECEIVERS
    for message in receiver.received:
        told = expected[message.path.rsplit("/", 1)[1]]
        assert message.json["errors"] == told[:ERRORS_PER_MESSAGE]
        assert message.json["moreErrors"] == len(told) - ERRORS_PER_MESSAGE


def test_ten_thousand_runs_ending_together_do_not_hold_the_loop(tmp_path: Path) -> None:
    """The runs of tasks whose state is known (no read of the store, which would give the
    loop its turn): each one a route takes makes a message, queued for its receiver."""
    notifier_ = notifier(tmp_path, "http://127.0.0.1:9", "everyFailure", lambda key: True)
    # One run in 50 is of a team a route takes.
    keys = [
        f"default/team{n // 50 % 200 if n % 50 == 0 else 200 + n % 200}-r{n}" for n in range(10_000)
    ]

    def failed(key: str) -> RunRecord:
        return RunRecord(
            id=run_id(key, T0),
            task=key,
            scheduled_at=T0,
            trigger=Trigger.SCHEDULE,
            status=RunStatus.FAILED,
            attempt=1,
            started_at=T0,
            finished_at=T0 + timedelta(seconds=1),
            exit_code=1,
        )

    async def scenario() -> int:
        for key in keys:
            notifier_.on_run(failed(key))
        async with Probe(lambda: notifier_.considered) as probe:
            await notifier_._drain_intake()  # what the component does when woken
        assert notifier_.considered == len(keys)
        return probe.most

    most = asyncio.run(scenario())
    assert most <= YIELD_EVERY
    queued = {
        receiver: sorted(message.body["task"]["key"] for message in queue)
        for receiver, queue in notifier_.queues.items()
        if queue
    }
    expected: dict[str, list[str]] = {}
    routed = receivers()
    for key in keys:
        receiver = routed.get(team(key))
        if receiver is not None:
            expected.setdefault(receiver, []).append(key)
    assert len(expected) == RECEIVERS
    assert queued == {receiver: sorted(told) for receiver, told in expected.items()}
