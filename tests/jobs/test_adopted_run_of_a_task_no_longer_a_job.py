"""A Job run adopted after a restart whose task is no longer a job task (its CronTask or file
now runs a ``command`` or an ``http`` call, changed while crontask was down): a failed attempt
is not retried with the new action (the Job's work retried as a command in crontask's own
container), as a change seen while the run goes on cancels its retry: the retry is recorded
``skipped``, reason ``TaskChanged``. The Job itself is still followed to its end."""

from __future__ import annotations

from reconciler.controller.dispatch import Dispatcher
from reconciler.core.runs import RunStatus, Trigger
from reconciler.store import MemoryRunStore
from tests.helpers import definition
from tests.jobs.test_job_runner import OLD_NAME, dispatch, left_running, until
from tests.jobs.twin import FakeCluster


def test_a_failed_job_is_not_retried_as_the_command_its_task_became() -> None:
    async def body(d: Dispatcher, cluster: FakeCluster, store: MemoryRunStore) -> None:
        now = definition(
            "job", retry={"limit": 2, "backoffSeconds": 0}, command={"args": ["echo", "hi"]}
        )
        old = left_running(store, cluster)
        assert d.adopt(now, old)
        cluster.finish(OLD_NAME, "Failed", exit_code=1, log="nope\n")
        await until(lambda: len(store.attempts(old.id)) == 2)
        await until(lambda: store.attempts(old.id)[1].status.finished)
        first, retry = store.attempts(old.id)
        assert (first.status, first.output) == (RunStatus.FAILED, "nope\n")
        assert (retry.status, retry.reason, retry.trigger) == (
            RunStatus.SKIPPED,
            "TaskChanged",
            Trigger.RETRY,
        )

    dispatch(body)
