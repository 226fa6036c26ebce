"""Which Job watches ``/api/v1/sources`` lists (``JobSupport.watch_states``): the watch of each
namespace the job tasks in force send Jobs to, and, while any job task is in force, one that
fails with none there (kept for the Jobs of a task since moved); none without a job task. The
count of job tasks by namespace is made once a desired state's tasks: it walked every
definition on each request (188 ms at 100 000 tasks), and a pass that changed nothing keeps
the same tasks in a new state."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any, cast

from reconciler.controller.jobs import JOB_WATCHES, JobSupport
from reconciler.core.desired import Definition, DesiredState
from reconciler.runner.job import JobRunner
from reconciler.sources.kubernetes_jobs import JobWatch
from tests.helpers import definition

POD = {"containers": [{"name": "main", "image": "busybox"}], "restartPolicy": "Never"}


@dataclasses.dataclass
class Informer:
    failures: int = 0
    last_error: str | None = None
    failing_since: datetime | None = None


class Watch:
    def __init__(self, informers: dict[str | None, Informer]) -> None:
        self.by_namespace = informers

    def informers(self) -> dict[str | None, Informer]:
        return dict(self.by_namespace)


@dataclasses.dataclass
class Runner:
    namespace: str = "default"


class Counted(dict[str, Definition]):
    """Tasks that count how often they are walked."""

    walks = 0

    def values(self) -> Any:
        self.walks += 1
        return super().values()


def job(name: str, namespace: str | None = None) -> Definition:
    spec: dict[str, Any] = {"spec": {"template": {"spec": POD}}}
    if namespace is not None:
        spec["namespace"] = namespace
    return definition(name, command=None, job=spec)


def listed(support: JobSupport, desired: DesiredState) -> dict[str, tuple[int, int]]:
    states = support.watch_states(desired)
    assert {s.kind for s in states} <= {JOB_WATCHES}
    return {s.location: (s.tasks, s.sync_failures) for s in states}


def support_of(informers: dict[str | None, Informer]) -> JobSupport:
    return JobSupport(cast(JobWatch, Watch(informers)), cast(JobRunner, Runner()))


def test_the_watches_of_the_namespaces_in_use_and_a_failing_one_left_over() -> None:
    refused = Informer(3, "HTTP 403 Forbidden", datetime(2026, 12, 7, tzinfo=UTC))
    support = support_of({"default": Informer(), "other": refused, "idle": Informer()})
    tasks = {d.key: d for d in (job("a"), job("b"), job("c", "batch"), definition("cmd"))}

    assert listed(support, DesiredState(tasks=tasks)) == {
        "Jobs in namespace default": (2, 0),
        "Jobs in namespace other": (0, 3),  # failing, its task moved: still said
    }
    # No job task in force: no watch is listed, a failing one neither.
    assert listed(support, DesiredState(tasks={"default/cmd": definition("cmd")})) == {}


def test_the_cluster_wide_watch_counts_every_job_task() -> None:
    support = support_of({None: Informer()})
    tasks = {d.key: d for d in (job("a"), job("b", "batch"))}
    assert listed(support, DesiredState(tasks=tasks)) == {"Jobs, cluster-wide": (2, 0)}


def test_the_count_is_made_once_for_the_same_tasks() -> None:
    support = support_of({"default": Informer()})
    tasks = Counted({d.key: d for d in (job("a"), job("b"))})
    first = DesiredState(tasks=tasks)
    for _ in range(3):
        assert listed(support, first) == {"Jobs in namespace default": (2, 0)}
    # A pass that changed nothing: a new state, the same tasks.
    assert listed(support, dataclasses.replace(first)) == {"Jobs in namespace default": (2, 0)}
    assert tasks.walks == 1
    changed = {**tasks, "default/c": job("c")}
    assert listed(support, DesiredState(tasks=changed)) == {"Jobs in namespace default": (3, 0)}
