"""A followed Job that ends while crontask cannot see it (an API outage, a watch gap) is
recorded as ending when the Job says it ended, not when crontask saw it end (more than
``execution.SEEN_LATE`` after it): the run's duration is the Job's, not the outage's. The
Job's end is on the API server's clock, so it never moves the end before the run's start nor
after now (``execution._complete``)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from reconciler.core.runs import RunStatus
from reconciler.store import MemoryRunStore
from tests.jobs.test_job_runner import NAME, T0, job_task, until, wired
from tests.jobs.twin import FakeCluster


def followed_and_ended(seen: timedelta, behind: timedelta = timedelta(0)) -> datetime | None:
    """A run started at T0 whose Job completes 5 s after its creation (``FakeCluster.finish``),
    seen by this crontask ``seen`` after T0; its recorded end. ``behind``: how far the API
    server's clock is behind this crontask's (its creationTimestamp and completionTime so)."""
    store = MemoryRunStore()
    now = [T0]

    async def main() -> datetime | None:
        cluster = FakeCluster()
        d, _ = wired(cluster, store, lambda: now[0])
        fired = d.fire(job_task(), T0)
        await until(lambda: NAME in cluster.jobs and cluster.jobs[NAME]["metadata"].get("uid"))
        cluster.watch_delivers = False  # the gap: only the runner's own read finds the end
        now[0] = T0 + seen
        cluster.finish(NAME, log="done\n")
        if behind:
            _on_a_clock_behind(cluster, behind)
        await until(lambda: (store.get(fired.id) or fired).status.finished)
        await d.shutdown(0)
        ended = store.get(fired.id)
        assert ended is not None
        assert ended.status is RunStatus.SUCCEEDED
        assert ended.started_at == T0
        return ended.finished_at

    return asyncio.run(main())


def _on_a_clock_behind(cluster: FakeCluster, behind: timedelta) -> None:
    job = cluster.jobs[NAME]
    for where, field in ((job["metadata"], "creationTimestamp"), (job["status"], "completionTime")):
        at = datetime.fromisoformat(where[field].replace("Z", "+00:00")) - behind
        where[field] = at.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_job_that_ended_unseen_is_recorded_with_its_own_end() -> None:
    assert followed_and_ended(timedelta(minutes=10)) == T0 + timedelta(seconds=5)


def test_a_job_end_after_the_time_it_was_seen_is_taken_for_now() -> None:
    # The API server's clock ahead of crontask's: the end is never after it was seen.
    assert followed_and_ended(timedelta(seconds=2)) == T0 + timedelta(seconds=2)


def test_a_job_end_seen_soon_after_it_keeps_the_time_seen() -> None:
    """Within SEEN_LATE the end seen here is the better one: to the millisecond, where the
    Job's completionTime is to the second (and on the API server's clock)."""
    assert followed_and_ended(timedelta(seconds=7, milliseconds=250)) == T0 + timedelta(
        seconds=7, milliseconds=250
    )


def test_an_api_server_clock_behind_does_not_shorten_the_run() -> None:
    """Its clock 10 s behind, a Job that ran 15 s seen at once: its completionTime is 10 s
    before this crontask's now, which is no gap. The Job's own times say how long it ran."""
    assert followed_and_ended(timedelta(seconds=5), behind=timedelta(seconds=10)) == T0 + (
        timedelta(seconds=5)
    )


def test_an_api_server_clock_behind_still_gives_an_unseen_end() -> None:
    assert followed_and_ended(timedelta(minutes=10), behind=timedelta(seconds=10)) == T0 + (
        timedelta(seconds=5)
    )
