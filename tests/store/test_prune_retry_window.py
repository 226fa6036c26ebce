"""The max age never takes a run whose retry may still come, whoever prunes.

``busy`` names only the pruning process's own runs waiting for their retry. With ``--ha`` the
other replica's prune, and with crontasks sharing one ``--db`` the other crontask's, deleted by
age the failed first attempt of a run that waited for its retry (a backoff of up to a day): the
retry then recorded attempt 2 alone, a run without its first attempt. So the store itself
keeps every run whose newest attempt failed or timed out recently enough that a retry may
follow (within the longest backoff crontask allows, with a margin), unless that attempt says
none follows (a stop, an unknown outcome, the most attempts any retry limit allows).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Connection

from reconciler.controller import active
from reconciler.core.fields import MAX_BACKOFF
from reconciler.core.model import RetryPolicy
from reconciler.core.runs import JOB_DELETED, RunRecord, RunStatus, Trigger, run_id
from reconciler.store import RunStore, retry_window, sql_retention
from reconciler.store.sql import SqlRunStore

from ._records import T0, everything, rec

TASK = "ops/flaky"
NOW = T0 + timedelta(days=40)
MAX_AGE = timedelta(days=30)
A = "replica-a:1:aaaa"  # records the run and waits for its retry
B = "replica-b:2:bbbb"  # prunes, knowing nothing of A's waiting run
# Spelled out, not read from the store, so that these tests fail on a store without the rule
# (rather than failing to load); test_the_bounds_are_crontask_s holds them to the store's.
MOST_ATTEMPTS = 101  # a retry limit of at most 100: attempt 101 is never retried
PAST_THE_WINDOW = timedelta(days=2)  # the longest backoff, a day, and a margin: past them


def _chain(at: int, ended: timedelta, statuses: list[RunStatus], **fields: Any) -> list[RunRecord]:
    """The attempts of a manual run scheduled ``at`` minutes after T0, its latest attempt
    ended ``ended`` before NOW (``fields`` go to that one), each earlier one an hour before."""
    last = len(statuses)
    records = []
    for n, status in enumerate(statuses, start=1):
        end = NOW - ended - timedelta(hours=last - n)
        records.append(
            rec(
                TASK,
                at,
                status,
                attempt=n,
                trigger=Trigger.MANUAL if n == 1 else Trigger.RETRY,
                started_at=end - timedelta(seconds=5),
                finished_at=end,
                **({"owner": A} | (fields if n == last else {})),
            )
        )
    return records


def _left(store: RunStore) -> set[tuple[int, int]]:
    """(minute after T0, attempt) of every record left."""
    return {
        (int((r.scheduled_at - T0).total_seconds() // 60), r.attempt) for r in everything(store)
    }


def test_another_pruner_keeps_a_run_whose_retry_may_still_come(
    sql_url: str, open_many: Callable[[str], RunStore]
) -> None:
    """Two store objects on one database, as two replicas (or two crontasks) have: B prunes
    by age, A's run waits for its retry, and B's ``busy`` does not name it."""
    recorder, pruner = open_many(sql_url), open_many(sql_url)
    # Scheduled 40 days ago; its 30th attempt failed an hour ago: a retry may follow.
    waiting = _chain(0, timedelta(hours=1), [RunStatus.FAILED] * 30)
    recorder.save_many(waiting)
    # Its window is past (and older: the newest run that tells, A's task's, stays).
    recorder.save_many(_chain(-5, timedelta(days=3), [RunStatus.FAILED]))

    deleted = pruner.prune({}, MAX_AGE, NOW, declared=set(), owner=B)

    assert deleted == 1
    assert _left(pruner) == {(0, n) for n in range(1, 31)}
    # The retry comes, on A: its run is whole.
    recorder.claim(rec(TASK, 0, attempt=31, trigger=Trigger.RETRY, owner=A))
    assert [r.attempt for r in recorder.attempts(waiting[0].id)] == list(range(1, 32))


@pytest.mark.parametrize(
    ("ended", "statuses", "fields", "stays"),
    [
        pytest.param(timedelta(hours=2), [RunStatus.FAILED], {}, True, id="failed"),
        pytest.param(timedelta(hours=2), [RunStatus.TIMED_OUT], {}, True, id="timed-out"),
        # The longest backoff is a day: one that ended a day ago may still be retried.
        pytest.param(timedelta(seconds=MAX_BACKOFF), [RunStatus.FAILED], {}, True, id="a-day"),
        pytest.param(
            PAST_THE_WINDOW,
            [RunStatus.FAILED],
            {},
            False,
            id="window-past",
        ),
        # Its retry was recorded as not started (shutdown, task changed): the run is over.
        pytest.param(
            timedelta(hours=2), [RunStatus.FAILED, RunStatus.SKIPPED], {}, False, id="abandoned"
        ),
        pytest.param(
            timedelta(hours=2), [RunStatus.FAILED, RunStatus.SUCCEEDED], {}, False, id="retried"
        ),
        pytest.param(timedelta(hours=2), [RunStatus.INTERRUPTED], {}, False, id="process-died"),
        pytest.param(
            timedelta(hours=2),
            [RunStatus.FAILED],
            {"reason": JOB_DELETED},
            False,
            id="unknown-outcome",
        ),
        pytest.param(
            timedelta(hours=2),
            [RunStatus.FAILED],
            {"reason": active.TASK_REMOVED},
            False,
            id="stopped",
        ),
        pytest.param(
            timedelta(hours=2),
            [RunStatus.FAILED] * MOST_ATTEMPTS,
            {},
            False,
            id="last-attempt-any-limit-allows",
        ),
        pytest.param(
            timedelta(hours=2),
            [RunStatus.FAILED] * (MOST_ATTEMPTS - 1),
            {},
            True,
            id="one-before-the-last",
        ),
    ],
)
def test_the_max_age_spares_a_run_while_a_retry_may_follow(
    store: RunStore,
    ended: timedelta,
    statuses: list[RunStatus],
    fields: dict[str, Any],
    stays: bool,
) -> None:
    # The mark of missed slots, and the last success (it ended last): stays, whatever its age.
    store.claim(rec(TASK, 10, owner=A, finished_at=NOW))
    records = _chain(0, ended, statuses, **fields)
    store.save_many(records)

    deleted = store.prune({}, MAX_AGE, NOW, retrying={TASK})

    kept = {(0, r.attempt) for r in records} if stays else set()
    assert _left(store) == {(10, 1), *kept}
    assert deleted == len(records) - len(kept)


def test_a_short_max_age_keeps_a_failed_run_for_its_retry(store: RunStore) -> None:
    """With ``--history-max-age 30s`` every failed run is past the max age before its retry."""
    at = NOW - timedelta(minutes=2)
    store.save_many([rec(TASK, at, RunStatus.FAILED, trigger=Trigger.MANUAL, owner=A)])

    assert store.prune({}, timedelta(seconds=30), NOW, retrying={TASK}) == 0

    assert [r.attempt for r in store.attempts(run_id(TASK, at))] == [1]


def test_the_limits_still_apply_to_a_run_the_max_age_spares(store: RunStore) -> None:
    """Only the max age waits for the retry: the history limits apply, as ever, to the runs the
    pruning process does not name ``busy`` (its own tasks' only)."""
    store.claim(rec(TASK, 10, owner=A))
    store.save_many(_chain(0, timedelta(hours=1), [RunStatus.FAILED]))

    assert store.prune({TASK: (1, 0)}, MAX_AGE, NOW, retrying={TASK}) == 1

    assert _left(store) == {(10, 1)}


def test_the_reasons_that_end_a_run_are_the_controller_s() -> None:
    """The store cannot import the controller: its copy of the stop reasons is checked here.
    Each is the reason of an attempt crontask stopped, which never retries."""
    stops = {
        active.SHUTDOWN,
        active.REPLACED,
        active.TASK_REMOVED,
        active.TASK_CHANGED,
        active.HANDED_OVER,
    }
    assert {*stops, JOB_DELETED} == retry_window.NO_RETRY_REASONS


def test_the_bounds_are_crontask_s() -> None:
    """The most attempts is one past the highest retry limit the resource takes; the window
    is the longest backoff it takes, and a margin shorter than PAST_THE_WINDOW's."""
    assert retry_window.MOST_ATTEMPTS == MOST_ATTEMPTS
    RetryPolicy(limit=MOST_ATTEMPTS - 1)
    with pytest.raises(ValueError, match="less than or equal"):
        RetryPolicy(limit=MOST_ATTEMPTS)
    assert timedelta(seconds=MAX_BACKOFF) < retry_window.RETRY_WINDOW < PAST_THE_WINDOW


def test_spared_runs_that_fill_transactions_do_not_stop_the_prune(
    sql_store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runs spared are passed over like the busy ones: more of them than a transaction
    reads must not have every following transaction read them again."""
    monkeypatch.setattr(sql_retention, "_PRUNE_TX_ROWS", 2)
    monkeypatch.setattr(sql_retention, "SQLITE_PRUNE_PAUSE", 0.0)
    assert isinstance(sql_store, SqlRunStore)
    for minute in range(6):  # the oldest three may still be retried
        ended = timedelta(hours=1) if minute < 3 else timedelta(days=3)
        sql_store.save_many(_chain(minute, ended, [RunStatus.FAILED]))
    sql_store.claim(rec(TASK, 10))  # the mark
    transactions = [0]
    real = sql_store._tx

    @contextlib.contextmanager
    def transaction(**kwargs: Any) -> Iterator[Connection]:
        transactions[0] += 1
        assert transactions[0] < 20, "the prune does not end"
        with real(**kwargs) as conn:
            yield conn

    monkeypatch.setattr(sql_store, "_tx", transaction)

    assert sql_store.prune({}, MAX_AGE, NOW, retrying={TASK}) == 3
    assert _left(sql_store) == {(0, 1), (1, 1), (2, 1), (10, 1)}


def test_a_task_without_retries_keeps_no_failed_run_past_the_max_age(store: RunStore) -> None:
    """Its failed runs wait for nothing: a task failing every second with a short max age kept
    a day of them (and each prune read them all again). Only a task declared with a retry limit
    (``retrying``), or another crontask's run (its policy unknown here), waits."""
    store.claim(rec(TASK, 10, owner=A))  # the mark
    store.save_many(_chain(0, timedelta(hours=1), [RunStatus.FAILED]))
    store.save_many(_chain(1, timedelta(hours=1), [RunStatus.FAILED], owner=B))

    assert store.prune({}, MAX_AGE, NOW, owner=A) == 1

    assert _left(store) == {(1, 1), (10, 1)}  # B's stays: its retry may come, for all A knows


def test_tasks_not_known_for_sure_keep_every_run_that_may_wait(store: RunStore) -> None:
    """Before a pass applied (or with every source empty) the tasks that retry are not known:
    every failed run in the window stays, another replica's waiting one among them."""
    store.claim(rec(TASK, 10, owner=A))
    store.save_many(_chain(0, timedelta(hours=1), [RunStatus.FAILED]))

    assert store.prune({}, MAX_AGE, NOW, retrying=None) == 0
