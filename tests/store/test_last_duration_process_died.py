"""A task's last duration (``RunStore.last_outcomes``) passes over the attempts marked
``interrupted`` because their process died (``core.runs.PROCESS_DIED``), run against every
store (see ``conftest.store_url``).

Such an attempt's end is not known: ``mark_interrupted`` records the moment a crontask found it
dead, after a crash that moment when crontask came back, so its "duration" is the downtime.
Exported as ``crontask_task_last_run_duration_seconds``, it stretched ``CrontaskTaskRunningLong``
(twice the longer of the interval and the last duration) by the outage: 10 h down, and an hourly
task's hung next run alerted after about 20 h instead of 2 h. The attempt is still the task's
last failure, and its record keeps the times the store has (``crontask runs`` shows them).
"""

from __future__ import annotations

from datetime import timedelta

from reconciler.core.runs import PROCESS_DIED, LastOutcomes, RunStatus
from reconciler.store import RunStore

from ._records import T0, rec

TASK = "ops/hourly"
DEAD = "host-a:100:boot-1"
END = timedelta(seconds=5)  # rec's attempts start 1 s after their slot, end 5 s after it


def test_an_attempt_found_dead_after_a_crash_is_no_last_duration(store: RunStore) -> None:
    store.save_many([rec(TASK, at=0)])  # ran 4 s
    store.claim(rec(TASK, at=60, status=RunStatus.RUNNING, owner=DEAD))
    back = T0 + timedelta(hours=11)  # crontask killed during the run, back 10 h later
    [died] = store.mark_interrupted([DEAD], back)
    assert (died.status, died.reason, died.finished_at) == (
        RunStatus.INTERRUPTED,
        PROCESS_DIED,
        back,
    )

    assert store.last_outcomes([TASK]) == {TASK: LastOutcomes(T0 + END, back, 4.0)}
    assert store.get(died.id) == died  # the record itself keeps what the store knows


def test_a_task_whose_only_end_is_a_death_has_a_failure_and_no_duration(
    store: RunStore,
) -> None:
    store.claim(rec(TASK, at=0, status=RunStatus.RUNNING, owner=DEAD))
    back = T0 + timedelta(hours=3)
    store.mark_interrupted([DEAD], back)

    assert store.last_outcomes([TASK]) == {TASK: LastOutcomes(None, back, None)}


def test_the_duration_is_that_of_the_newest_attempt_whose_end_is_known(store: RunStore) -> None:
    """Only the deaths are passed over: an interrupted attempt of another reason (or of none,
    as an imported or older history may hold) has a known end, and one that ended after a
    death gives the duration as before. Several deaths in a row are all passed over."""
    other = "ops/other"
    store.save_many(
        [
            # ops/hourly: a known interrupted end (no reason: NULL in SQL), then two deaths.
            rec(TASK, at=0, status=RunStatus.FAILED, exit_code=1),
            rec(
                TASK,
                at=60,
                status=RunStatus.INTERRUPTED,
                exit_code=None,
                reason=None,
                finished_at=T0 + timedelta(minutes=60, seconds=8),
            ),
            rec(
                TASK,
                at=120,
                status=RunStatus.INTERRUPTED,
                exit_code=None,
                reason=PROCESS_DIED,
                finished_at=T0 + timedelta(hours=5),
            ),
            rec(
                TASK,
                at=180,
                status=RunStatus.INTERRUPTED,
                exit_code=None,
                reason=PROCESS_DIED,
                finished_at=T0 + timedelta(hours=6),
            ),
            # ops/other: a death, then a success that ended after it.
            rec(
                other,
                at=0,
                status=RunStatus.INTERRUPTED,
                exit_code=None,
                reason=PROCESS_DIED,
                finished_at=T0 + timedelta(hours=2),
            ),
            rec(other, at=180, finished_at=T0 + timedelta(minutes=180, seconds=30)),
        ]
    )

    assert store.last_outcomes([TASK, other]) == {
        TASK: LastOutcomes(None, T0 + timedelta(hours=6), 7.0),
        other: LastOutcomes(T0 + timedelta(minutes=180, seconds=30), T0 + timedelta(hours=2), 29.0),
    }
