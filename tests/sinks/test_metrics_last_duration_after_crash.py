"""After a crash, the task's last run duration the metrics start from is that of its last
attempt whose end is known, not the attempt the crash cut short.

crontask killed during a run and back 10 h later marks that run ``interrupted``
(``ProcessDied``) with the moment it came back as its end: taken for a duration, those 10 h
made ``CrontaskTaskRunningLong`` (twice the longer of the interval and the last duration) wait
about 20 h before it saw the hourly task's next run hang. Read from a real store of each kind
(``tests/store/conftest.store_url``), as ``crontask run`` reads it at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from reconciler.core.runs import RunStatus
from reconciler.sinks.metrics import MemoryTasks, Metrics
from reconciler.store import RunStore
from tests.helpers import definition
from tests.sinks.test_metrics import NEXT, samples
from tests.store._records import T0, rec
from tests.store.conftest import (  # noqa: F401 (fixtures: every store, PostgreSQL's)
    open_many,
    pg_admin,
    pg_url,
    store_url,
)

DURATION = "crontask_task_last_run_duration_seconds"
FAILURE = "crontask_task_last_failure_timestamp_seconds"
TASK = "default/hourly"
DEAD = "host-a:100:boot-1"


def test_the_run_a_crash_cut_short_is_no_last_duration(
    store_url: str,  # noqa: F811 - the fixture imported above
    open_many: Callable[[str], RunStore],  # noqa: F811
) -> None:
    store = open_many(store_url)
    store.save_many([rec(TASK, at=0)])  # ran 4 s
    store.claim(rec(TASK, at=60, status=RunStatus.RUNNING, owner=DEAD))
    back = T0 + timedelta(hours=11)  # killed during the run, back 10 h later
    store.mark_interrupted([DEAD], back)
    tasks = MemoryTasks()
    tasks.set(definition("hourly"), NEXT, 3600.0)

    found = samples(Metrics(tasks, history=store))

    label = frozenset({("task", TASK)})
    assert found[(DURATION, label)] == 4.0  # was 35 999 s: the downtime
    assert found[(FAILURE, label)] == back.timestamp()  # still the task's last failure
