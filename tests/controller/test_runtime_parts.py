"""The parts `crontask run` builds, each on its own: the dispatcher and its actions."""

from __future__ import annotations

from typing import Any, cast

from reconciler.controller.jobs import JobSupport
from reconciler.controller.wiring import dispatcher
from reconciler.runner.job import JobRunner
from reconciler.store.memory import MemoryRunStore
from tests.jobs.twin import FakeCluster


def test_the_dispatcher_runs_commands_and_http_calls_and_jobs_only_with_a_cluster() -> None:
    plain = dispatcher(MemoryRunStore(), "me", {"PATH": "/usr/bin"}, 2.0, None)
    assert plain.actions.fields == ("command", "http")
    assert plain.resumable is None
    assert plain.owner == "me"

    cluster = FakeCluster()
    runner = JobRunner(cluster, namespace="default")
    support = JobSupport(cast(Any, cluster), runner)
    with_jobs = dispatcher(MemoryRunStore(), "me", {}, 2.0, support)
    assert with_jobs.actions.fields == ("command", "http", "job")
    # The Job runner resumes runs adopted at start-up and reports each Job's progress.
    assert with_jobs.resumable is runner
    assert runner.progress == with_jobs.progress
