"""Retention keeps each task's newest run that says how it did, whatever its history limits,
run against every store (see ``conftest.store_url``).

With ``successfulRunsHistoryLimit: 0`` a daily task failed, was fixed and run by hand, and
succeeded; retention deleted the success (limit 0, no slot's newest run) and kept the older
failure (``failedRunsHistoryLimit: 1``). A process started afterwards read its state from the
store: the metrics had a last failure and no last success (``CrontaskTaskFailing``), the status
page read the failure first, and both said the healthy task was failing until its next success,
up to a day. A CronJob keeps ``status.lastSuccessfulTime`` whatever its history limits.

So was a failing task's last success: with the same limits a task that succeeded, then kept
failing, had its success deleted, and after a restart the metrics had no last success
(``crontask_task_last_success_timestamp_seconds``): ``CrontaskTaskNoRecentSuccess``, which
compares it with the slot before last, could not fire until the task succeeded again.

Here the state a fresh store object derives from the history (``last_outcomes`` as the metrics
and the ok/failing filter read it; the newest attempt that tells as the status page reads it)
is the same after the prune as before it, and the extra runs kept are two at most.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from reconciler.core.runs import LastOutcomes, RunRecord, RunStatus, Trigger
from reconciler.core.status import SHUTDOWN_REASON, is_failure
from reconciler.store import RunQuery, RunStore
from tests.helpers import definition
from tests.sinks.test_metrics import value
from tests.store.test_metrics_seed_retried import LAST_SUCCESS, seeded_metrics

from ._records import T0, everything, rec

TASK = "ops/nohist"
NO_SUCCESSES = (0, 1)  # successfulRunsHistoryLimit: 0, failedRunsHistoryLimit: 1


def _manual(minutes: int, status: RunStatus = RunStatus.SUCCEEDED) -> RunRecord:
    """A Run now asked ``minutes`` after T0: its slot is never a whole second."""
    at = T0 + timedelta(minutes=minutes, microseconds=1)
    return rec(TASK, at, status, trigger=Trigger.MANUAL)


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _derived(store: RunStore) -> tuple[bool, datetime | None, str | None]:
    """What a process that starts reads of the task's state: failing as the metrics' alert
    judges it (a last failure after the last success, or without one), when it last
    succeeded (failing or not: ``CrontaskTaskNoRecentSuccess`` reads it), and the run the
    status page's last result is (its first attempt, newest first, that succeeded or failed;
    a skip or a shutdown's interruption says nothing)."""
    outcome = store.last_outcomes([TASK]).get(TASK, LastOutcomes())
    failing = outcome.failure is not None and (
        outcome.success is None or outcome.failure > outcome.success
    )
    attempts = store.query(RunQuery(task=TASK, limit=1000)).items
    shown = next(
        (r for r in attempts if r.status is RunStatus.SUCCEEDED or is_failure(r)),
        None,
    )
    return failing, outcome.success, None if shown is None else shown.id


def _fresh(store_url: str, store: RunStore, open_many: Callable[[str], RunStore]) -> RunStore:
    """The store as a process started after the prune opens it (the memory store has no other
    process: itself)."""
    return store if store_url == "memory://" else open_many(store_url)


CASES = {
    # Failed on schedule, fixed, Run now succeeded: the manual success is the last word.
    "run-now-fixed-it": [
        rec(TASK, 0, RunStatus.FAILED, exit_code=1),
        _manual(30),
    ],
    # Forbid: a long run succeeded (ended after the slot after it was skipped); the newest slot
    # run is the skip, which says nothing of the task.
    "forbid-skip-after-success": [
        rec(TASK, 0, RunStatus.FAILED, exit_code=1),
        rec(TASK, 3, finished_at=T0 + timedelta(minutes=8)),
        rec(TASK, 6, RunStatus.SKIPPED, started_at=None, reason="ConcurrencyForbid"),
    ],
    # crontask stopped during the newest run: its interruption takes the failed bucket's one
    # place, and says nothing either (core.status.is_failure).
    "shutdown-after-success": [
        rec(TASK, 0, RunStatus.FAILED, exit_code=1),
        rec(TASK, 3),
        rec(TASK, 6, RunStatus.INTERRUPTED, reason=SHUTDOWN_REASON),
    ],
    # The failure is the last word: kept by its limit as before, and the task still fails;
    # the success before it is its last success.
    "still-failing": [
        rec(TASK, 0),
        rec(TASK, 3, RunStatus.FAILED, exit_code=1),
        rec(TASK, 6, RunStatus.SKIPPED, started_at=None, reason="ConcurrencyForbid"),
    ],
    # Failing since a success, every slot: the newest failure is the mark, the last word and
    # the one failure the limit keeps; the success is only the last success.
    "failing-since-a-success": [
        rec(TASK, 0),
        rec(TASK, 3, RunStatus.FAILED, exit_code=1),
        rec(TASK, 6, RunStatus.TIMED_OUT, exit_code=None),
    ],
    # The success came on a retry (its first attempt failed): the run is the last success.
    "failing-since-a-retry-succeeded": [
        rec(TASK, 0, RunStatus.FAILED, exit_code=1),
        rec(
            TASK,
            0,
            attempt=2,
            trigger=Trigger.RETRY,
            started_at=T0 + timedelta(minutes=1),
            finished_at=T0 + timedelta(minutes=1, seconds=5),
        ),
        rec(TASK, 3, RunStatus.FAILED, exit_code=1),
    ],
    # Allow, overlapping runs: the 0 slot's run ends last (at 150), after the 60 slot's (at 61).
    # The last success is when a success last ended, as last_outcomes exports it: keeping the
    # newer slot's run moved it back to 61 after a restart.
    "allow-older-slot-ended-last": [
        rec(TASK, 0, finished_at=_at(150)),
        rec(TASK, 60, finished_at=_at(61)),
        rec(TASK, 120, RunStatus.FAILED, exit_code=1, finished_at=_at(125)),
        rec(TASK, 180, RunStatus.FAILED, exit_code=1, finished_at=_at(185)),
    ],
    # A late retry: the 0 slot's run failed, and its retry succeeded at 100, after the 30
    # slot's run succeeded at 31.
    "late-retry-ended-last": [
        rec(TASK, 0, RunStatus.FAILED, exit_code=1),
        rec(TASK, 0, attempt=2, trigger=Trigger.RETRY, started_at=_at(90), finished_at=_at(100)),
        rec(TASK, 30, finished_at=_at(31)),
        rec(TASK, 120, RunStatus.FAILED, exit_code=1),
    ],
}


@pytest.mark.parametrize("history", CASES.values(), ids=CASES.keys())
def test_a_fresh_process_derives_the_state_it_had_before_the_prune(
    store_url: str, open_many: Callable[[str], RunStore], history: list[RunRecord]
) -> None:
    store = open_many(store_url)
    store.save_many(history)
    before = _derived(store)

    store.prune({TASK: NO_SUCCESSES}, None, T0 + timedelta(hours=1))

    assert _derived(_fresh(store_url, store, open_many)) == before


def test_the_last_word_is_one_run_more_at_most(store: RunStore) -> None:
    """Bounded: of a task with a long history, only the newest run that tells is kept beyond
    the limits and the mark of missed slots; where one of those is it, nothing more."""
    store.save_many([rec(TASK, minute, RunStatus.FAILED, exit_code=1) for minute in range(50)])
    store.save_many([_manual(minute + 50) for minute in range(50)])
    store.save_many(
        [rec(TASK, minute + 100, RunStatus.SKIPPED, started_at=None) for minute in range(50)]
    )

    store.prune({TASK: (0, 0)}, None, T0 + timedelta(days=1))

    # The newest slot run (a skip: the mark) and the newest manual success (the last word).
    assert [r.id for r in everything(store)] == [
        rec(TASK, 149).id,
        _manual(99).id,
    ]

    other = "ops/plain"
    store.save_many([rec(other, minute) for minute in range(50)])

    store.prune({other: (0, 0)}, None, T0 + timedelta(days=1))

    assert [r.id for r in everything(store) if r.task == other] == [rec(other, 49).id]


def test_the_last_success_is_one_run_more_at_most(store: RunStore) -> None:
    """Bounded: a task that succeeded, then failed and skipped for long, keeps its newest
    success besides the mark and the last word, and nothing more."""
    store.save_many([rec(TASK, minute) for minute in range(50)])
    store.save_many([rec(TASK, minute + 50, RunStatus.FAILED, exit_code=1) for minute in range(50)])
    store.save_many(
        [rec(TASK, minute + 100, RunStatus.SKIPPED, started_at=None) for minute in range(50)]
    )

    store.prune({TASK: (0, 0)}, None, T0 + timedelta(days=1))

    # The mark (the newest skip), the last word (the newest failure), the last success.
    assert [r.id for r in everything(store)] == [
        rec(TASK, 149).id,
        rec(TASK, 99).id,
        rec(TASK, 49).id,
    ]


@pytest.mark.parametrize("history", CASES.values(), ids=CASES.keys())
def test_the_max_age_keeps_it_as_the_mark(
    store_url: str, open_many: Callable[[str], RunStore], history: list[RunRecord]
) -> None:
    """A ``@monthly`` task failed on the 1st and was fixed by hand that day: on the 31st both
    runs are past the 30 days of ``--history-max-age``, and the failure stayed as the mark of
    missed slots while the success went. The newest run that tells stays as long as the
    mark does: while the task is declared."""
    store = open_many(store_url)
    store.save_many(history)
    before = _derived(store)
    now = T0 + timedelta(days=31)

    store.prune({}, timedelta(days=30), now, declared={TASK})

    assert _derived(_fresh(store_url, store, open_many)) == before

    store.prune({}, timedelta(days=30), now, declared=set())  # no longer declared: all go
    assert everything(store) == []


def test_a_restarted_process_still_exports_the_last_success_of_a_failing_task(
    sql_url: str, open_many: Callable[[str], RunStore]
) -> None:
    """End to end: a task declared with ``successfulRunsHistoryLimit: 0`` that keeps failing
    since it last succeeded; the housekeeping prunes (limits and max age), crontask restarts,
    and its first scrape still has the last success that ``CrontaskTaskNoRecentSuccess``
    compares with the slot before last (without it the alert cannot fire)."""
    job = definition("job")
    store = open_many(sql_url)
    succeeded = rec(job.key, 0)
    store.save_many(
        [
            succeeded,
            *(
                rec(job.key, T0 + timedelta(days=day), RunStatus.FAILED, exit_code=1)
                for day in range(1, 40)
            ),
        ]
    )
    now = T0 + timedelta(days=40)

    store.prune({job.key: NO_SUCCESSES}, timedelta(days=30), now, declared={job.key})
    store.close()

    metrics = seeded_metrics(open_many(sql_url), job)
    assert succeeded.finished_at is not None
    found = value(metrics, LAST_SUCCESS, task=job.key)
    assert found == succeeded.finished_at.timestamp()


@pytest.mark.parametrize("by", ["limits", "age"])
def test_of_two_successes_that_ended_together_the_newer_run_is_kept(
    store: RunStore, by: str
) -> None:
    """One last success, whichever way the store finds it: of two runs that ended at the same
    instant, the newer slot's (the SQL store's age prune compares ends, its limit prune reads
    the end of the succeeded range; both break the tie as ``base.last_success_order``)."""
    store.save_many(
        [
            rec(TASK, 0, finished_at=_at(100)),
            rec(TASK, 30, finished_at=_at(100)),
            rec(TASK, 60, RunStatus.FAILED, exit_code=1),
        ]
    )
    if by == "limits":
        store.prune({TASK: (0, 0)}, None, _at(200))
    else:
        store.prune({}, timedelta(days=1), _at(200) + timedelta(days=1), declared={TASK})

    assert [r.id for r in everything(store)] == [rec(TASK, 60).id, rec(TASK, 30).id]
