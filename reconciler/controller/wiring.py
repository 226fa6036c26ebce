"""How ``crontask run`` makes each of its parts from its options (``controller.options``),
one function a part: the sources, in the order passes read them, the environment commands get,
the dispatcher with its actions, the reconciler, the replica membership, the notifier and the
heartbeat.

A function that makes a part also hooks it to the parts it listens to (the notifier to runs and
passes, the Job runner to the dispatcher's progress). Which part is made when, what links the
others, and the order they start in are the runtime's (``controller.runtime``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Final

from reconciler.aio import in_thread
from reconciler.controller.cluster import Cluster
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.heartbeat import Heartbeat
from reconciler.controller.job_options import WithoutJobs
from reconciler.controller.options import HaOptions, Options
from reconciler.controller.reconcile import PassResult, Reconciler
from reconciler.controller.replace_wait import replaced_stop_bound
from reconciler.core.desired import Definition
from reconciler.core.fields import MAX_HISTORY
from reconciler.core.plan import Operation
from reconciler.core.runs import RunRecord, RunStatus
from reconciler.host import usable_cores
from reconciler.membership.base import Membership, Views
from reconciler.runner.base import Action, Actions
from reconciler.runner.command_runner import CommandRunner
from reconciler.runner.environment import task_environment
from reconciler.runner.http import HttpRunner
from reconciler.scheduling.apscheduler import ApsScheduler
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from reconciler.sinks.notify_history import JUDGED, Reading
from reconciler.sources.ahead import read_ahead
from reconciler.sources.api import ApiSource, ApiTaskFiles
from reconciler.sources.base import Source
from reconciler.sources.files import DirectorySource
from reconciler.sources.git import GitSource
from reconciler.sources.rootpaths import checked_roots
from reconciler.store.base import RunQuery, RunStore
from reconciler.store.merged import newest_first

if TYPE_CHECKING:  # they import the Kubernetes client, which a crontask without it never loads
    from reconciler.controller.jobs import JobSupport
    from reconciler.controller.kube import Kubernetes

log = logging.getLogger("crontask")


def local_sources(options: Options) -> tuple[DirectorySource | None, GitSource | None]:
    """The folder and git sources, their files read ahead on every core (for git, the tree an
    earlier run left in force); a folder another user may change is warned of first. This must
    run before anything starts a thread: reading ahead forks only from a process without one.
    The first pass takes what was read of each file that has not changed since."""
    size, tasks, cores = options.max_file_size, options.max_tasks, usable_cores()
    folders = None
    if options.paths:
        checked_roots(options.paths)  # once, here: only the daemon runs what they hold
        guard = not options.allow_empty
        folders = DirectorySource(
            options.paths,
            max_file_size=size,
            max_tasks=tasks,
            refused_record=options.state_dir / "refused-files.json",
            guard_empty=guard,
        )
        read_ahead(folders, cores)
    git = None
    if options.git:
        git = GitSource(options.git, options.state_dir, max_file_size=size, max_tasks=tasks)
        git.read_ahead(cores)
    return folders, git


def task_env(options: Options) -> dict[str, str]:
    if unset := [name for name in options.pass_env if name not in os.environ]:
        log.warning(
            "--pass-env names a variable crontask does not have; commands do not get it",
            extra={"fields": {"names": ",".join(unset)}},
        )
    return task_environment(os.environ, options.task_env, options.pass_env)


def dispatcher(
    store: RunStore,
    me: str,
    task_env: dict[str, str],
    kill_grace: float,
    support: JobSupport | None,
) -> Dispatcher:
    """The dispatcher with its actions: commands, HTTP calls, and Jobs when there is a
    cluster to create them in (its runner then resumes adopted runs and reports progress)."""
    runners: list[Action] = [CommandRunner(task_env, kill_grace=kill_grace), HttpRunner(os.environ)]
    if support is not None:
        runners.append(support.runner)
    dispatcher = Dispatcher(store, owner=me, actions=Actions(runners))
    dispatcher.replaced_stop = replaced_stop_bound(kill_grace)
    if support is not None:
        dispatcher.resumable = support.runner
        support.runner.progress = dispatcher.progress
    return dispatcher


def sources(
    options: Options,
    folders: DirectorySource | None,
    git: GitSource | None,
    kube: Kubernetes | None,
) -> list[Source]:
    """The API's own tasks first, then folders, git and the CronTask resources. Each of the
    last three holds at most ``--max-tasks`` tasks (the CronTask source's bound is set here,
    before it lists anything: it is made with its connection, before the options are read)."""
    if kube is not None:
        kube.source.max_tasks = options.max_tasks
    found = [folders, git, kube.source if kube is not None else None]
    return [_api_source(options), *(source for source in found if source is not None)]


def _api_source(options: Options) -> ApiSource:
    """Files in the state directory; with replicas, the shared store (so every replica sees
    the same tasks), polled for the writes of the others."""
    if options.ha is None:
        folder = options.state_dir / "api-tasks"
        return ApiSource(ApiTaskFiles(folder), location=f"API-owned tasks in {folder}")
    from reconciler.store.api_tasks import SqlApiTasks

    assert options.db_url is not None
    return ApiSource(
        SqlApiTasks.open(options.db_url),
        location="API-owned tasks in the shared run store",
        poll=options.ha.timing.renew_interval,
    )


SAY_UNREAD: Final = 10  # tasks named; the others counted


def say_unread_api_tasks(options: Options) -> None:
    """In a worker thread, at start: the tasks the API created in the other place, which this
    crontask does not read (``_api_source``). A crontask without ``--ha`` keeps them in the
    state directory, replicas in the shared store: moving to replicas, or back, they were gone
    without a word. Said at each start while they are there; a place that cannot be read (a
    store that does not answer within ``CALL_WAIT``) is not said."""
    if options.ha is not None:
        folder = options.state_dir / "api-tasks"
        with contextlib.suppress(OSError):
            _say_unread(ApiTaskFiles(folder).load(), f"in {folder}", "not read with --ha")
        return
    if options.db_url is None or not options.db_url.startswith("postgresql"):
        return
    from reconciler.store.api_tasks import SqlApiTasks
    from reconciler.store.base import StoreUnavailable

    shared = SqlApiTasks.open(options.db_url)
    try:
        _say_unread(shared.versions(), "in the run store", "read only with --ha")
    except StoreUnavailable:
        pass
    finally:
        shared.engine.dispose()


def _say_unread(keys: Collection[str], where: str, unread: str) -> None:
    if keys:
        named = sorted(keys)
        log.warning(
            f"API-owned tasks {where} are {unread}: a crontask without --ha keeps the API's "
            "tasks in its state directory, replicas in the shared run store; create them "
            "again through the API (POST /api/v1/tasks) where they are read, then remove "
            "them from the other place",
            extra={"fields": {"count": len(named), "tasks": ",".join(named[:SAY_UNREAD])}},
        )


def reconciler(
    options: Options,
    sources: list[Source],
    support: JobSupport | None,
    scheduler: ApsScheduler,
    dispatcher: Dispatcher,
    anchors: Mapping[str, datetime],
) -> Reconciler:
    """The reconciler over ``sources``; without Kubernetes each source is seen through
    ``WithoutJobs``, which keeps what a task ran before it became a job task (in force now)."""

    def in_force(key: str) -> Definition | None:
        return made.desired.tasks.get(key)

    made = Reconciler(
        sources if support is not None else [WithoutJobs(s, in_force) for s in sources],
        scheduler,
        dispatcher,
        allow_empty=options.allow_empty,
        anchors=anchors,
    )
    return made


def membership(
    options: Options, ha: HaOptions, kube: Kubernetes | None
) -> tuple[Membership, Views]:
    """Leases with Kubernetes, else the members table; the views live in the shared store."""
    # Imported here: only --ha needs them (and only --ha requires PostgreSQL).
    from reconciler.store.members import SqlMembership, SqlViews

    assert options.db_url is not None
    rows = SqlMembership.open(options.db_url)
    views = SqlViews(rows.engine)
    if kube is None:
        return rows, views
    from reconciler.membership.leases import LeaseMembership, group_of

    namespace = ha.lease_namespace or kube.connection.home
    # The replicas sharing this run store are one group: another deployment's Leases in the
    # same namespace are not members (they would be handed tasks they never run).
    group = group_of(options.db_url)
    log.info(
        "membership on Kubernetes Leases",
        extra={"fields": {"namespace": namespace, "group": group}},
    )
    return LeaseMembership(kube.connection.api, namespace, group=group), views


# Runs read back of one task at most: ten times the failed runs (failed, timed out, interrupted
# by crash or shutdown) and abandoned retries a task may keep, for those kept since the last
# housekeeping; more, and the task is read back as the oldest of them left it.
_READ_MAX: Final = 10 * MAX_HISTORY


def notifier(
    options: Options,
    metrics: Metrics,
    reconciler: Reconciler,
    dispatcher: Dispatcher,
    store: RunStore,
    cluster: Cluster | None,
) -> Notifier | None:
    """--notifications: a run listener and pass observer, delivering in its own component."""
    if options.notifications is None:
        return None
    notifier = Notifier(
        options.notifications,
        metrics=metrics,
        mine=reconciler.mine,
        history=lambda key: _recent_runs(store, key),
        page_url=options.page_url,
        # With replicas the one that finds a crashed run may not own its task: see notify.py.
        crashes_told=cluster is None,
    )
    dispatcher.subscribe(notifier.on_run)

    def after_pass(result: PassResult) -> None:
        if result.ok:
            left = (step.key for step in result.plan.of(Operation.REMOVE))
            notifier.after_pass(result.desired, left)

    reconciler.subscribe(after_pass)
    if cluster is not None:
        cluster.on_resumed = notifier.forget
    return notifier


def heartbeat(
    store: RunStore,
    me: str,
    reconciler: Reconciler,
    notifier: Notifier | None,
    outlives: Callable[[RunRecord], bool],
    *,
    replicas: bool,
) -> Heartbeat:
    """The heartbeat: this crontask's row, and the runs of those whose row has stopped, told
    to the notifier for the tasks this crontask declares. Replicas judge the rows without
    one of their own (they judge each other by their membership)."""
    return Heartbeat(
        store,
        me,
        call=in_thread,  # not the recorder's: its threads end with the runs, before this
        outlives=outlives,
        declares=lambda key: key in reconciler.desired.tasks,
        declaring=lambda: reconciler.applied,
        arrivals=lambda: reconciler.arrivals,
        on_interrupted=notifier.crashed if notifier is not None else lambda records: None,
        beating=not replicas,
        tells=notifier is not None and not replicas,
    )


def _recent_runs(store: RunStore, key: str) -> list[RunRecord]:
    """A task's newest records, newest first, for the notifier: as far back as it judges
    them (``notify_history.Reading``), ``_READ_MAX`` at most. Page by page (a short history:
    all of it, in one query) until a page is mostly skipped slots; from there, only the
    kinds it judges (``JUDGED``), each by a query the store filters. A run that hangs under
    Forbid leaves a skipped slot each time one is due until housekeeping, thousands of a task
    of every second: read page by page, five at most, they hid the failure that was told, and
    its recovery went untold after a restart. (A page of each kind is a query each: a long
    streak of failures alone is read faster whole.)"""
    reading = Reading()
    found: list[RunRecord] = []
    q = RunQuery(task=key, limit=20, output=False)
    while len(found) < _READ_MAX:
        page = store.query(q)
        found += page.items
        if page.next_cursor is None or any(reading.add(run) for run in page.items):
            return found
        if sum(run.status is RunStatus.SKIPPED for run in page.items) * 2 > len(page.items):
            for run in newest_first(store, key, JUDGED, after=found[-1]):
                found.append(run)
                if reading.add(run) or len(found) >= _READ_MAX:
                    break
            return found
        q = dataclasses.replace(q, limit=200, cursor=page.next_cursor)
    return found
