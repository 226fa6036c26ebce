"""Runs in progress at once are bounded (``controller.bounds``): an ``Allow`` task whose runs
outlast its period (``* * * * * *``, ``sleep 600``) started a process each second until
crontask's file descriptors ran out; then every other task's starts failed ("Too many open
files") and the API stopped accepting connections. Past ``RUNS_MAX`` runs of one task, or the
runs this process's limit on open files leaves room for, a slot is skipped ``TooManyRuns``.
"""

from __future__ import annotations

import asyncio
import os
import resource
from datetime import datetime, timedelta
from typing import Any

from reconciler.controller.bounds import RunBounds
from reconciler.controller.dispatch import Dispatcher
from reconciler.core.desired import Definition
from reconciler.core.runs import FILES_PER_RUN, RUNS_MAX, RunRecord, RunStatus, Trigger
from reconciler.runner.base import Actions
from reconciler.runner.memory import ScriptedAction
from reconciler.store import MemoryRunStore
from tests.controller.test_policies import FAILED, T0, settle, until
from tests.helpers import definition, local_actions

POD = {"containers": [{"name": "main", "image": "busybox"}]}


class Clock:
    """The dispatcher's clock, set by hand: each slot is fired at its instant."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, slot: datetime) -> datetime:
        self.now = slot
        return slot


def dispatcher(*actions: ScriptedAction) -> tuple[Dispatcher, Clock]:
    clock = Clock()
    d = Dispatcher(MemoryRunStore(), owner="h:1:x", clock=clock, actions=Actions(actions))
    return d, clock


def hog(**spec: Any) -> Definition:
    return definition("hog", schedule="* * * * * *", concurrencyPolicy="Allow", **spec)


def test_one_task_runs_at_most_runs_max_at_once_whatever_their_trigger() -> None:
    """Scheduled runs, one waiting for its retry, manual runs and a catch-up count together;
    the slot past the bound is skipped and its record says which bound; another task is not
    held; once one run has ended, the next slot runs."""

    async def main() -> None:
        action = ScriptedAction()
        d, clock = dispatcher(action)
        job = hog(retry={"limit": 1, "backoffSeconds": 3600})
        heard: list[RunRecord] = []
        d.subscribe(heard.append)
        slots = [T0 + timedelta(seconds=s) for s in range(RUNS_MAX)]
        d.fire(job, clock.at(slots[0]))
        await until(lambda: len(action.running()) == 1)
        action.running()[0].finish(FAILED)  # its retry waits an hour: it still holds its slot
        await until(lambda: not action.running() and len(d.active(job.key)) == 1)
        for slot in slots[1 : RUNS_MAX - 4]:
            d.fire(job, clock.at(slot))
        for n in range(3):
            clock.at(slots[-1] + timedelta(milliseconds=n + 1))
            assert d.fire_manual(job).status is RunStatus.RUNNING
        d.fire(job, slots[-4], Trigger.CATCHUP)
        assert len(d.active(job.key)) == RUNS_MAX

        past = d.fire(job, clock.at(slots[-1] + timedelta(seconds=1)))
        assert (past.status, past.reason) == (RunStatus.SKIPPED, "TooManyRuns")
        assert past.message == (
            f"runs in progress: {RUNS_MAX} of this task (at most {RUNS_MAX} a task); "
            "skipped until one has ended"
        )
        manual = d.fire_manual(job)
        assert (manual.status, manual.reason) == (RunStatus.SKIPPED, "TooManyRuns")
        assert d.fire(definition("other"), clock()).status is RunStatus.RUNNING
        assert len(d.active(job.key)) == RUNS_MAX  # nothing else changed

        await until(lambda: len(action.running()) == RUNS_MAX)  # the other task's and 99
        next(a for a in action.running() if a.record.task == job.key).finish()
        await until(lambda: len(d.active(job.key)) == RUNS_MAX - 1)
        assert d.fire(job, clock.at(clock() + timedelta(seconds=1))).status is RunStatus.RUNNING
        await until(lambda: any(r.id == past.id for r in heard))  # the skip is recorded
        assert d.recorder.store.get(past.id) == past
        await d.shutdown(0)  # the retry waits an hour: cancelled

    asyncio.run(main())


def test_all_tasks_run_at_most_what_the_open_files_leave_room_for() -> None:
    """200 open files: a quarter for the API's connections, 64 for the rest, 2 a run: 43."""

    async def main() -> None:
        action, jobs = ScriptedAction(), ScriptedAction("job")
        d, _ = dispatcher(action, jobs)
        d.bounds = RunBounds(open_files=200)
        asked = [d.fire(definition(f"t{n}"), T0) for n in range(44)]
        assert [r.status for r in asked].count(RunStatus.RUNNING) == 43
        assert (asked[-1].status, asked[-1].reason) == (RunStatus.SKIPPED, "TooManyRuns")
        assert asked[-1].message == (
            "runs in progress: 43 in all (at most 43 under crontask's limit of 200 open "
            "files); skipped until one has ended"
        )
        # A job task's runs hold no descriptor here: the cluster's quota bounds its Jobs.
        job = definition("j", command=None, job={"spec": {"template": {"spec": POD}}})
        assert d.fire(job, T0).status is RunStatus.RUNNING
        await until(lambda: len(action.running()) == 43 and len(jobs.running()) == 1)
        action.running()[0].finish()
        await until(lambda: d.active_count() == 43)
        assert d.fire(definition("t43"), T0 + timedelta(minutes=1)).status is RunStatus.RUNNING
        for attempt in jobs.attempts:
            attempt.finish()
        await settle(d, action)
        await d.shutdown(0)

    asyncio.run(main())


def test_under_a_low_limit_one_task_takes_at_most_half_of_the_room() -> None:
    """The reviewer's host: 160 open files leave room for 28 runs; the hog takes 14, and the
    other task's slots still start."""

    async def main() -> None:
        action = ScriptedAction()
        d, clock = dispatcher(action)
        d.bounds = RunBounds(open_files=160)
        job = hog()
        asked = [d.fire(job, clock.at(T0 + timedelta(seconds=s))) for s in range(15)]
        assert [r.status for r in asked].count(RunStatus.RUNNING) == 14
        assert asked[-1].message == (
            "runs in progress: 14 of this task (at most 14 a task: half of the 28 that "
            "crontask's limit of 160 open files leaves room for); skipped until one has ended"
        )
        assert d.fire(definition("innocent"), clock()).status is RunStatus.RUNNING
        await settle(d, action)
        await d.shutdown(0)

    asyncio.run(main())


def test_a_job_task_is_not_bounded_per_task_either() -> None:
    async def main() -> None:
        jobs = ScriptedAction("job")
        d, clock = dispatcher(jobs)
        job = hog(command=None, job={"spec": {"template": {"spec": POD}}})
        asked = [d.fire(job, clock.at(T0 + timedelta(seconds=s))) for s in range(RUNS_MAX + 1)]
        assert {r.status for r in asked} == {RunStatus.RUNNING}
        await until(lambda: len(jobs.running()) == RUNS_MAX + 1)
        for attempt in jobs.attempts:
            attempt.finish()
        assert await d.drain(5)
        await d.shutdown(0)

    asyncio.run(main())


def test_the_bound_of_all_tasks_is_this_process_limit_on_open_files() -> None:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert RunBounds().open_files == (None if soft == resource.RLIM_INFINITY else soft)


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def sleeps(n: int) -> Definition:
    return definition(f"s{n}", command={"args": ["sleep", "60"]})


def test_a_command_run_in_progress_holds_at_most_files_per_run_descriptors() -> None:
    """What the bound of all tasks counts on, measured: ten more ``sleep`` runs in progress
    hold at most ten times ``FILES_PER_RUN`` more descriptors of this process."""

    async def main() -> tuple[int, int]:
        d = Dispatcher(MemoryRunStore(), owner="h:1:x", actions=local_actions(kill_grace=1))
        started: list[RunRecord] = []

        def heard(record: RunRecord) -> None:
            # Heard as its process has started: its pipe's read end and its pidfd are open,
            # and the pipe's write end (the child's) closed already.
            if record.status is RunStatus.RUNNING:
                started.append(record)

        d.subscribe(heard)
        d.fire(sleeps(0), T0)  # the first spawn makes what every later one shares
        await until(lambda: len(started) == 1)
        before = open_files()
        for n in range(1, 11):
            d.fire(sleeps(n), T0)
        await until(lambda: len(started) == 11)
        during = open_files()
        await d.shutdown(0)
        return before, during

    before, during = asyncio.run(main())
    assert 10 <= during - before <= 10 * FILES_PER_RUN, (before, during)
