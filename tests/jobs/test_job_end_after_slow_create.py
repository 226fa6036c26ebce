"""A Job whose create is answered late (an API server slow to answer the POST, or a create held
and written later, found by the read that follows it unanswered) is recorded as ending when
the Job ended, never before: the Job's own times (how long it ran since its creation) count
from when its create was answered here, not from the run's start, and a Job seen ending at
once is not taken for one seen late (``execution._job_end``)."""

from __future__ import annotations

import asyncio
import copy
from datetime import datetime, timedelta
from typing import Any

from reconciler.core.runs import RunRecord, RunStatus
from reconciler.store import MemoryRunStore
from tests.jobs.test_job_runner import NAME, T0, job_task, until, wired
from tests.jobs.twin import ApiError, FakeCluster

SLOW = timedelta(seconds=12)  # how late the API server creates the Job and answers
RAN = timedelta(seconds=5)  # how long the Job runs after its creation


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


class SlowCreate(FakeCluster):
    """An API server that creates the Job ``SLOW`` after the POST (on the test's clock, which
    the answer moves on) and answers then; ``answered``: False, it never answers the create
    (held, then a client-side timeout), and the read that follows finds the Job."""

    def __init__(self, now: list[datetime], *, answered: bool = True) -> None:
        super().__init__()
        self.now = now
        self.answered = answered

    async def create(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        self.calls.append(("create", body["metadata"]["name"]))
        self.now[0] = T0 + SLOW
        body = copy.deepcopy(body)
        body["metadata"]["creationTimestamp"] = _stamp(T0 + SLOW)
        job = self.add(body)
        if not self.answered:
            raise ApiError("cannot create Job: ReadTimeoutError: read timed out")
        return copy.deepcopy(job), True

    def finish_after(self, ran: timedelta) -> None:
        """The Job completes ``ran`` after its creation, by its own times."""
        self.finish(NAME, log="done\n")
        self.jobs[NAME]["status"]["completionTime"] = _stamp(T0 + SLOW + ran)


def slow_create_then(seen: timedelta, *, answered: bool = True) -> RunRecord:
    """A run that starts at T0, whose Job is created and answered ``SLOW`` later, runs ``RAN``,
    and is seen ending ``seen`` after its creation; its final record."""
    store = MemoryRunStore()
    now = [T0]

    async def main() -> RunRecord:
        cluster = SlowCreate(now, answered=answered)
        d, runner = wired(cluster, store, lambda: now[0])
        runner.clock = lambda: now[0]  # one wall clock, as in ``crontask run``
        runner.create_attempts = 1
        fired = d.fire(job_task(), T0)
        await until(lambda: NAME in cluster.jobs)
        cluster.watch_delivers = seen <= RAN  # seen late: only the runner's own read finds it
        now[0] = T0 + SLOW + seen
        cluster.finish_after(RAN)
        await until(lambda: (store.get(fired.id) or fired).status.finished)
        await d.shutdown(0)
        ended = store.get(fired.id)
        assert ended is not None
        assert ended.status is RunStatus.SUCCEEDED
        assert ended.started_at == T0
        return ended

    return asyncio.run(main())


def test_a_job_seen_ending_at_once_after_a_create_answered_late_ends_then() -> None:
    ended = slow_create_then(RAN)
    # Not T0 + RAN (5 s, before the create was even answered) as "seen late" and back-dated.
    assert ended.finished_at == T0 + SLOW + RAN
    assert ended.duration_ms == (SLOW + RAN) // timedelta(milliseconds=1)


def test_a_job_seen_ending_late_after_a_create_answered_late_ends_at_its_own_end() -> None:
    ended = slow_create_then(RAN + timedelta(minutes=10))
    assert ended.finished_at == T0 + SLOW + RAN


def test_a_job_found_by_the_read_after_a_create_unanswered_ends_after_it() -> None:
    ended = slow_create_then(RAN, answered=False)
    assert ended.finished_at == T0 + SLOW + RAN
    assert ended.duration_ms == (SLOW + RAN) // timedelta(milliseconds=1)
