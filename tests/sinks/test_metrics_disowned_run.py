"""With ``--ha``, a replica frozen past its lease hears, once resumed, the record another
replica wrote of its run: ``interrupted``, ``ProcessDied``, ended when it was found gone
(``controller.disowned``). Its metrics take that as the run's end here (it is no longer in
progress, and it is the task's last failure), but not as a duration (the freeze is in it, as
the downtime is in a run a crash cut short), nor as an end to count: the replica the task went
to counts it (README "Metrics"), and its count here made ``sum(increase(crontask_runs_total))``
count it twice."""

from __future__ import annotations

from datetime import timedelta

from reconciler.core.runs import PROCESS_DIED, UNTOLD, RunStatus
from reconciler.sinks.metrics import MemoryTasks, Metrics
from tests.helpers import definition
from tests.sinks.test_metrics import NEXT, T0, attempt, run, samples

TASK = "default/frozen"
LABEL = frozenset({("task", TASK)})
INTERRUPTED = frozenset({("task", TASK), ("status", "interrupted")})


def test_a_run_another_replica_marked_is_no_duration_and_no_end_counted_here() -> None:
    tasks = MemoryTasks()
    tasks.set(definition("frozen"), NEXT, 60.0)
    metrics = Metrics(tasks)
    run(metrics, TASK, RunStatus.SUCCEEDED, at=T0, took=4.0)  # a run that ended here
    going, _ = attempt(TASK, RunStatus.FAILED, at=T0 + timedelta(minutes=1))
    metrics.on_run(going)
    assert going.started_at is not None
    found_at = going.started_at + timedelta(minutes=10)  # frozen for ten minutes
    marked = going.finish(
        RunStatus.INTERRUPTED, finished_at=found_at, reason=PROCESS_DIED, message="gone" + UNTOLD
    )

    metrics.on_run(marked)  # what the resumed replica's listeners hear

    found = samples(metrics)
    assert found[("crontask_running_runs", LABEL)] == 0
    assert found[("crontask_task_last_failure_timestamp_seconds", LABEL)] == found_at.timestamp()
    assert found[("crontask_task_last_run_duration_seconds", LABEL)] == 4.0  # not 600
    assert found[("crontask_run_duration_seconds_count", frozenset())] == 1
    assert found[("crontask_run_duration_seconds_sum", frozenset())] == 4.0
    assert found[("crontask_runs_total", INTERRUPTED)] == 0  # counted where the task went
