"""What ``crontask run`` is told: its options as data, with the product's defaults.

The CLI fills them in from the command line (``cli.daemon``); the runtime
(``controller.runtime``) and the functions that make its parts (``controller.wiring``) read
them. Nothing here acts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from reconciler.controller.job_options import JobOptions
from reconciler.membership.base import Timing
from reconciler.runner.environment import TaskEnv
from reconciler.sinks.notify_config import Notifications
from reconciler.sources.git import GitOptions
from reconciler.sources.kubernetes_options import KubernetesOptions
from reconciler.sources.limits import DEFAULT_MAX_FILE_SIZE, DEFAULT_MAX_TASKS


@dataclasses.dataclass(frozen=True)
class HaOptions:
    """``--ha``: this instance is one of several replicas sharing a PostgreSQL run store."""

    timing: Timing = dataclasses.field(default_factory=Timing)
    lease_namespace: str | None = None  # with Kubernetes; None: the pod's or kubeconfig's
    address: str | None = None  # where this replica's API listens, for the members view


@dataclasses.dataclass(frozen=True)
class Options:
    paths: list[Path] = dataclasses.field(default_factory=list)
    state_dir: Path = Path(".crontask")
    db_url: str | None = None
    git: GitOptions | None = None
    kubernetes: KubernetesOptions | None = None
    allow_empty: bool = False
    resync_seconds: float = 300.0
    shutdown_grace: float = 30.0
    kill_grace: float = 10.0
    task_env: TaskEnv = "minimal"
    pass_env: tuple[str, ...] = ()
    history_max_age: float | None = 30 * 86400.0  # seconds; None keeps records forever
    housekeeping_seconds: float = 600.0
    ha: HaOptions | None = None
    # Without --ha, with Kubernetes: where the Lease crontask-single lives (membership.single);
    # None: the namespace watched, else the pod's. With --ha it is HaOptions.lease_namespace.
    lease_namespace: str | None = None
    max_file_size: int = DEFAULT_MAX_FILE_SIZE  # bytes; larger definition files are refused
    # What each source holds: the folders', git's, the CronTasks' (sources.taskbound, and
    # sources.kubernetes for CronTasks); the API's own tasks have their own (core.api_tasks).
    max_tasks: int = DEFAULT_MAX_TASKS
    metrics_per_task_histograms: bool = False
    jobs: JobOptions = dataclasses.field(default_factory=JobOptions)
    notifications: Notifications | None = None  # --notifications: receivers and routes
    page_url: str | None = None  # the status page's URL, for links in notifications
