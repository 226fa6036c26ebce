"""A Job whose create is answered late (an API server slow to answer the POST, or a create held
and written later, found by the read that follows it unanswered) is recorded as ending when
the Job ended, never before: it was created between its create's sending and its coming back
here, and its own end is kept within that window plus how long it ran, not counted from the
run's start; a Job seen ending at once is not taken for one seen late (``execution._job_end``)."""

from __future__ import annotations

import asyncio
import copy
from datetime import datetime, timedelta
from typing import Any

from reconciler.controller.execution import _job_end
from reconciler.core.runs import RunRecord, RunStatus
from reconciler.runner.job_end import JobEnd
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


def _followed(ended_at: datetime, within: tuple[datetime, datetime]) -> JobEnd:
    return JobEnd(
        status=RunStatus.SUCCEEDED,
        exit_code=0,
        reason=None,
        message="",
        output="",
        ended_at=ended_at,
        followed=True,
        ran_for=timedelta(seconds=10),
        created_within=within,
    )


def test_a_job_found_minutes_after_its_create_keeps_its_own_end() -> None:
    """Created at T0+1 s, ended at T0+11 s; the create went unanswered and the read that
    followed found the Job only at T0+300 s (an API outage); the end is seen at T0+301 s. The
    Job was created between the create's sending and that read: its own end, within that
    window plus how long it ran, is the run's (counted from the read, the run was 301 s)."""
    within = (T0, T0 + timedelta(seconds=300))
    ended = _job_end(_followed(T0 + timedelta(seconds=11), within), T0, T0 + timedelta(seconds=301))
    assert ended == T0 + timedelta(seconds=11)
    # An API server whose clock is off puts it at the window's nearest edge, never outside.
    skewed = _followed(T0 + timedelta(hours=1), within)
    assert _job_end(skewed, T0, T0 + timedelta(seconds=400)) == T0 + timedelta(seconds=310)
    early = _followed(T0 - timedelta(hours=1), within)
    assert _job_end(early, T0, T0 + timedelta(seconds=400)) == T0 + timedelta(seconds=10)
