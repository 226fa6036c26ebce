"""The answer to a run asked for now (``api.run_decision.decided``) against the real dispatcher
with the in-memory store and action: ``running`` only once the dispatcher says the run began
(``Triggered.start``, from ``Dispatcher.start_of``), never from its decision alone.

Under ``Replace``: a run replaced by a later run-now before it began is answered skipped
``Replaced`` (it was ``running``, for a run that never ran); one whose claim waits for a run of
its task on another replica to stop is ``pending`` and says so (it was ``running`` once the
answer's wait ran out), and ``running`` once it began. The real processes are in
tests/e2e/test_run_now_replaced_before_start.py and
tests/ha/test_run_now_replace_elsewhere_pending.py."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from reconciler.api import run_decision
from reconciler.api.problems import ProblemError
from reconciler.api.run_decision import decided
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.view import Members, Triggered
from reconciler.core.desired import Definition
from reconciler.core.runs import RunRecord, RunStatus
from reconciler.runner.base import Actions
from reconciler.runner.command_runner import CommandRunner
from reconciler.runner.memory import ScriptedAction
from reconciler.store import MemoryRunStore, RunStore, StoreUnavailable
from reconciler.store.base import ExclusiveClaim
from tests.api.fakes import FakeRuntime, view
from tests.api.fakes import definition as defined
from tests.controller.test_policies import T0, foreign_run, settle, until, with_handover


class Answering(FakeRuntime):
    """The API's view of ``dispatcher``: its store, and its word on runs that wait."""

    def __init__(self, dispatcher: Dispatcher, *, replicas: bool = False) -> None:
        super().__init__([view("job", concurrencyPolicy="Replace")])
        self.dispatcher = dispatcher
        self.replicas = Members(()) if replicas else None

    @property
    def store(self) -> RunStore:
        return self.dispatcher.recorder.store

    def replacing(self, run_id: str) -> bool:
        return self.dispatcher.replacing(run_id)

    def job(self) -> Definition:
        return defined(self.views["default/job"])

    def fire(self) -> Triggered:
        """A run-now, as ``RuntimeService.trigger`` fires it (on the loop)."""
        record = self.dispatcher.fire_manual(self.job())
        return Triggered.of(record, self.job(), self.dispatcher.start_of(record))

    async def answer(self, fired: Triggered) -> tuple[RunRecord, str | None]:
        """``decided``, in a thread (as the endpoint's), the loop going on meanwhile."""
        return await asyncio.to_thread(decided, self, fired)


def dispatcher(store: MemoryRunStore, action: ScriptedAction) -> Dispatcher:
    ticks = itertools.count()

    def clock() -> datetime:  # every run-now a moment of its own: a run of its own
        return T0 + timedelta(milliseconds=next(ticks))

    return Dispatcher(store, owner="h:1:x", clock=clock, actions=Actions([action]))


def test_a_run_now_replaced_before_it_began_is_answered_skipped() -> None:
    async def main() -> tuple[RunRecord, str | None, RunRecord, str | None]:
        action = ScriptedAction()
        d = dispatcher(MemoryRunStore(), action)
        runtime = Answering(d)
        # Two run-nows in one turn of the loop: the second replaces the first before it began.
        first, second = runtime.fire(), runtime.fire()
        one, two = await asyncio.gather(runtime.answer(first), runtime.answer(second))
        await settle(d, action)
        await d.shutdown(0)
        return *one, *two

    first, first_why, second, second_why = asyncio.run(main())

    assert (first.status, first.reason, first_why) == (RunStatus.SKIPPED, "Replaced", None)
    assert first.message is not None
    assert first.message.startswith("a newer run of the task replaced the run"), first.message
    assert (second.status, second_why) == (RunStatus.RUNNING, None)
    assert second.started_at is not None


def test_a_run_now_waiting_for_a_run_on_another_replica_is_pending_until_it_began(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(run_decision, "DECISION_WAIT", 0.3)

    async def main() -> tuple[tuple[RunRecord, str | None], tuple[RunRecord, str | None]]:
        action = ScriptedAction()
        store = MemoryRunStore()
        d = dispatcher(store, action)
        runtime = Answering(d, replicas=True)
        old = foreign_run(store, T0 - timedelta(minutes=1))  # going on another replica
        with_handover(d, store)
        fired = runtime.fire()
        await until(lambda: bool(store.stop_requests("other-host:7:gone")))
        waiting = await runtime.answer(fired)
        assert d.replacing(fired.record.id)
        # The other replica stops its run: this one's claim goes through, and it begins.
        store.complete(dataclasses.replace(old, status=RunStatus.FAILED, reason="Replaced"))
        await until(lambda: bool(action.running()))
        began = await runtime.answer(fired)
        assert not d.replacing(fired.record.id)
        await settle(d, action)
        await d.shutdown(0)
        return waiting, began

    (waiting, why), (began, began_why) = asyncio.run(main())

    assert waiting.status is RunStatus.RUNNING  # the API answers it ``pending``, with why
    assert why is not None
    assert why.startswith("not started: it waits for the run it replaces on another replica"), why
    assert (began.id, began.status, began_why) == (waiting.id, RunStatus.RUNNING, None)


def test_a_run_now_that_began_is_answered_with_when_it_began() -> None:
    """Its start is when its work began, not when it was decided (``_begin``)."""

    async def main() -> tuple[RunRecord, RunRecord]:
        action = ScriptedAction()
        d = dispatcher(MemoryRunStore(), action)
        runtime = Answering(d)
        fired = runtime.fire()
        found, _ = await runtime.answer(fired)
        await settle(d, action)
        await d.shutdown(0)
        return fired.record, found

    fired, found = asyncio.run(main())

    assert found.status is RunStatus.RUNNING
    assert fired.started_at is not None
    assert found.started_at is not None
    assert found.started_at > fired.started_at  # the fake clock ticked between the two


class _StoreDown(MemoryRunStore):
    """A store that does not answer: neither the claim that looks for a run elsewhere nor a
    read."""

    def claim_exclusive(self, records: Sequence[RunRecord]) -> list[ExclusiveClaim]:
        raise StoreUnavailable("connection refused")

    def get(self, run_id: str, attempt: int | None = None) -> RunRecord | None:
        raise StoreUnavailable("connection refused")


@pytest.mark.parametrize("policy", ["Forbid", "Replace"])
def test_a_run_now_the_store_could_not_check_is_undecided_with_replicas(policy: str) -> None:
    """With replicas, under Forbid and Replace, a store that does not answer is the ``503``
    ``run-undecided`` the README promises (it was ``202 pending``: the skip it records as its
    claim could not look for a run elsewhere ended the run's start, not answered as such)."""

    async def main() -> object:
        action = ScriptedAction()
        store = _StoreDown()
        d = dispatcher(store, action)
        runtime = Answering(d, replicas=True)
        runtime.views["default/job"] = view("job", concurrencyPolicy=policy)
        with_handover(d, store)
        fired = runtime.fire()
        try:
            said: object = await runtime.answer(fired)
        except ProblemError as err:
            said = err
        await d.shutdown(0)
        return said

    said = asyncio.run(main())

    assert isinstance(said, ProblemError), said
    assert (said.status, said.kind) == (503, run_decision.UNDECIDED_KIND)
    assert f"concurrencyPolicy {policy}" in said.detail


def test_a_run_now_ending_unrecorded_says_why_at_once() -> None:
    """Crontask stops while the claim waits for a run on another replica: nothing of the run
    is recorded (``Handover.claim``: DuplicateRun), and its answer says so and why, not that
    a record which will never be written is not written yet."""

    async def main() -> tuple[RunRecord, str | None, RunRecord | None]:
        action = ScriptedAction()
        store = MemoryRunStore()
        d = dispatcher(store, action)
        runtime = Answering(d, replicas=True)
        foreign_run(store, T0 - timedelta(minutes=1))
        with_handover(d, store)
        fired = runtime.fire()
        await until(lambda: bool(store.stop_requests("other-host:7:gone")))
        await d.shutdown(0)
        found, why = await runtime.answer(fired)
        return found, why, store.get(fired.record.id)

    found, why, stored = asyncio.run(main())

    assert stored is None  # nothing of it is recorded, nor will be
    assert found.status is RunStatus.RUNNING  # the API answers it ``pending``, with why
    assert why == (
        "not started, and it will not start: crontask stopped while this run waited; "
        "look at its run"
    )


@pytest.mark.parametrize("retries", [0, 2])
def test_a_run_now_whose_command_cannot_be_spawned_is_answered_as_it_failed(
    retries: int, tmp_path: Path
) -> None:
    """A command that cannot be spawned (no such file): the answer is the failed attempt, or,
    with retries left, says a retry is scheduled (it was ``pending`` once the wait ran out,
    with a reason about the store, the spawn never tried again within it)."""
    missing = str(tmp_path / "no-such-command")

    async def main() -> tuple[RunRecord, str | None]:
        runtime = FakeRuntime(
            [
                view(
                    "job",
                    concurrencyPolicy="Replace",
                    command={"args": [missing]},
                    retry={"limit": retries},
                )
            ]
        )
        runner = CommandRunner(dict(os.environ), kill_grace=0.1)
        d = Dispatcher(runtime.store, owner="h:1:x", actions=Actions([runner]))
        job = defined(runtime.views["default/job"])
        record = d.fire_manual(job)
        fired = Triggered.of(record, job, d.start_of(record))
        said = await asyncio.to_thread(decided, runtime, fired)
        await d.shutdown(0)
        return said

    found, why = asyncio.run(main())

    if retries:
        assert found.status is RunStatus.RUNNING  # the API answers it ``pending``, with why
        assert why is not None
        assert why.startswith("not started yet: its first attempt failed ("), why
        assert why.endswith("a retry is scheduled: look at its run"), why
    else:
        assert (found.status, why) == (RunStatus.FAILED, None)
        assert found.started_at is None
        assert missing in (found.message or ""), found.message


@pytest.mark.parametrize("policy", ["Allow", "Forbid"])
def test_an_allow_or_forbid_run_now_is_answered_by_its_decision(policy: str) -> None:
    """Only a Replace run waits for runs to stop before it starts: the others are answered by
    their decision, as they were, not held for their spawn (``Start``)."""

    async def main() -> tuple[Triggered, RunRecord, str | None]:
        action = ScriptedAction()
        d = dispatcher(MemoryRunStore(), action)
        runtime = Answering(d)
        runtime.views["default/job"] = view("job", concurrencyPolicy=policy)
        fired = runtime.fire()
        found, why = await runtime.answer(fired)
        await settle(d, action)
        await d.shutdown(0)
        return fired, found, why

    fired, found, why = asyncio.run(main())

    assert fired.start is None
    assert (found, why) == (fired.record, None)  # as decided: running, from its decision
