"""The Deployment's ``terminationGracePeriodSeconds`` covers crontask's whole stop with the
default options, in the worst case (a task that ignores SIGTERM, a run store and an API server
that take requests and never answer, a notification receiver that hangs), so that the
kubelet's SIGKILL does not come before the records are written or said lost.

The stop is sequential (``controller.manager`` stops the components one after the other, last
started first): every bounded wait on its path is listed here, each read from the code that
waits (its constant, or the default of the parameter it waits with), never copied. A wait
written anywhere in ``reconciler/`` (found by :func:`written_waits`: a constant, a class or
instance attribute, or a parameter's number default, whose name says ``wait`` or ``timeout``)
must be either on the path (``COUNTED``, in :func:`stop_path`) or said to be off it
(``OFF_THE_STOP_PATH``), so that a new one fails here until it is counted."""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.api.run_decision import DECISION_WAIT
from reconciler.cli.api_server import HTTP_STOP_WAIT
from reconciler.cli.main import build_parser
from reconciler.controller.heartbeat import FORGET_WAIT
from reconciler.controller.lane import ANSWER_WAIT
from reconciler.controller.leaving import LEAVE_WAIT
from reconciler.controller.replica_views import DROP_WAIT
from reconciler.controller.runtime import THREADS_WAIT
from reconciler.controller.stops import _KILL_AGAIN
from reconciler.controller.store_calls import PAGE_READ_WAIT
from reconciler.membership.leases import CALL_TIMEOUT
from reconciler.membership.single import RELEASE_WAIT
from reconciler.sinks.kubernetes import StatusWriter
from reconciler.sinks.kubernetes_events import EventRecorder
from reconciler.sinks.notify_delivery import SHUTDOWN_SECONDS
from reconciler.sources.kubernetes_watch import STOP_WAIT
from tests.deploy.test_manifests import kustomize, pod, with_components

RECONCILER = Path(__file__).resolve().parents[2] / "reconciler"

# What the grace keeps beyond the sum: a slow node, Python's start and exit (the status and
# Event writers' joins are within their counted ``stop(timeout)``).
MARGIN = 15.0


def _timeout_default(stop: Callable[..., None]) -> float:
    default = inspect.signature(stop).parameters["timeout"].default
    assert isinstance(default, float)
    return default


def stop_path(ha: bool) -> dict[str, float]:
    """The waits of a stop, in order, in seconds."""
    defaults = build_parser().parse_args(["run", "x"])
    waits = {
        # Stopped first: uvicorn's graceful stop waits for the requests in flight, then cancels
        # those left (one queued at the API's door, one whose body trickles). Not the requests'
        # own waits: a request cut is not waited for, its thread (a store read) ends on its own.
        "http: requests in flight": HTTP_STOP_WAIT,
        # Runs: their grace, SIGTERM then SIGKILL after the kill grace, SIGKILL again after
        # _KILL_AGAIN, the store's answer to their end records (then kept for later), and the
        # wait for the records kept for later (--shutdown-grace again: RunStops.shutdown).
        "runs: --shutdown-grace": defaults.shutdown_grace,
        "runs: --kill-grace": defaults.kill_grace,
        "runs: killed again": _KILL_AGAIN,
        "runs: the end record's answer": ANSWER_WAIT,
        "runs: records kept for later (--shutdown-grace)": defaults.shutdown_grace,
        # --ha leaves the replicas: its record's delete (a Lease's or a members row's), given
        # up after LEAVE_WAIT; a Lease's DELETE, connect and read timeouts, fit in it.
        **({"ha: leaving (its record's delete)": LEAVE_WAIT} if ha else {}),
        # --ha withdraws its view of the desired set (replica_views: given up after DROP_WAIT).
        **({"ha: leaving (its view withdrawn)": DROP_WAIT} if ha else {}),
        # The CronTask watch (told to stop at its turn, not waited for: stop_later) and the Job
        # watches (one a namespace with job tasks): their threads are waited for together, in
        # the Job watches' stop (stop_all), STOP_WAIT in all.
        "kubernetes: the watches (CronTasks and Jobs, one wait)": STOP_WAIT,
        # The Event recorder and the status writer flush what is queued (controller.kube passes
        # their timeouts; at most the default of each).
        "kubernetes: Events flushed": _timeout_default(EventRecorder.stop),
        "kubernetes: statuses flushed": _timeout_default(StatusWriter.stop),
        "heartbeat: this crontask's row removed": FORGET_WAIT,
        # The notifier looks at the runs that ended last (each may read the store), then its
        # senders deliver what that queued: one wait after the other.
        "notifications: the last runs looked at": SHUTDOWN_SECONDS,
        "notifications: delivered or dropped": SHUTDOWN_SECONDS,
        "serve: crontask's own threads": THREADS_WAIT,
        "cli.daemon: the threads again, before the exit": THREADS_WAIT,
    }
    return waits


# Waits named so that are not on the stop's sequential path, and why.
OFF_THE_STOP_PATH = {
    "RELEASE_WAIT": "the single Lease's release begins with the stop, during the runs' grace",
    "LIST_READ_WAIT": "an API read: an API request, cut at HTTP_STOP_WAIT (counted)",
    "PAGE_READ_WAIT": "a page of history's read: an API request, cut at HTTP_STOP_WAIT",
    "DECISION_WAIT": "a run-now's wait for its decision: an API request, cut at HTTP_STOP_WAIT",
    "READ_WAIT": "a signed webhook's secret file read: an API request, cut at HTTP_STOP_WAIT",
    "ON_LOOP_TIMEOUT": "an API write's hop to the loop: an API request, cut at HTTP_STOP_WAIT",
    "controller/api_writes.py:TELLING_TIMEOUT": "an API write's re-read before a 412: a request",
    "PING_TIMEOUT": "/readyz's store ping, not made at stop",
    "MAX_WAIT": "crontask trigger's client-side wait (--max-wait), another process",
    "COLLECTION_TIMEOUT": "git maintenance, not run at stop",
    "sources/gitmaintenance.py:CHECK_TIMEOUT": "a damaged mirror's check, in a sync: cancelled",
    "ORPHAN_WAIT": "an earlier crontask's git, killed before a start's first fetch: ends at once",
    "DELETE_TIMEOUT": "a Job's delete: Jobs outlive the process, detached at stop",
    "STOP_READ_TIMEOUT": "a Job run's end reads: a Job is detached at stop, nothing read",
    "STOP_READS_WAIT": "all of a Job run's end reads: as STOP_READ_TIMEOUT, not at stop",
    "_DRAIN_TIMEOUT": "pipes read after a process ended: within the runs' and git's graces",
    "_HURRIED_RECORDS": "after a second stop signal only, which shortens the stop",
    "store/api_tasks.py:CALL_WAIT": "an API task store call: an API request, cut at HTTP_STOP_WAIT",
    "store/api_tasks.py:WHOLE_WAIT": "a full read of the API's tasks: a source pass, in its thread",
    "controller/replica_views.py:PUBLISH_WAIT": "a renewal's publish: the renewal loop",
    "LOCK_WAIT": "store locks (migrations, PostgreSQL lock_timeout): under ANSWER_WAIT's bound",
    "READ_LOCK_WAIT": "the store's open, before crontask starts",
    "WRITE_LOCK_WAIT": "a write's lock wait, bounded for the stop by ANSWER_WAIT (counted)",
    "SQLITE_BUSY_TIMEOUT": "background writes (pruning), not awaited by the stop",
    "CALL_TIMEOUT": "a Lease call: at the stop, its delete, within LEAVE_WAIT (counted)",
    "PG_IDLE_IN_TRANSACTION_TIMEOUT": "the server's limit on a session, not a wait of crontask",
    "PG_WRITE_ANSWER_WAIT": "ends a run store write on PostgreSQL: the stop waits ANSWER_WAIT",
    "PG_READ_ANSWER_WAIT": "ends a run store read on PostgreSQL: awaited within its caller's",
    # Named in one module, or a name several modules use: by its place.
    "api/admission.py:WAIT_SECONDS": "a wait at the API's door: cut at HTTP_STOP_WAIT",
    "api/admission.py:PLAN_WAIT_SECONDS": "a plan's wait at the API's door: as WAIT_SECONDS",
    "cli/client.py:LIST_TIMEOUT_FACTOR": "the CLI client's (another process)",
    "cli/client_env.py:TIMEOUT_SECONDS": "the CLI client's (another process)",
    "cli/client_env.py:MAX_TIMEOUT_SECONDS": "the CLI client's (another process)",
    "controller/replace_wait.py:WAIT_MAX": "Replace's wait to start a run: none starts at stop",
    "sinks/metrics_runs.py:SEED_WAIT_SECONDS": "a scrape's wait: an API request, 1 s",
    "sinks/notify_delivery.py:TIMEOUT_SECONDS": "a delivery's, bounded by SHUTDOWN_SECONDS",
    "sinks/kubernetes_status.py:_TIMEOUT": "a status write's: the flush is StatusWriter.stop's",
    "sinks/kubernetes_events.py:EventRecorder.request_timeout": "an Event's: EventRecorder.stop's",
    "sources/job_calls.py:_TIMEOUT": "Job API calls': the watches' join is STOP_WAIT",
    "sources/pod_logs.py:TIMEOUT": "a pod log read at a run's end: within the runs' graces",
    "store/sql_schema.py:PG_CONNECT_TIMEOUT_S": "a connect: stop's store calls are ANSWER_WAIT's",
    # Attributes and parameter defaults.
    "controller/jobs.py:JobSupervisor.__init__(wait)": "the Job watch's first lists, at start",
    "sources/gitoptions.py:GitOptions.timeout": "a git call: a sync in flight at stop ends at once",
    "sources/gitprocess.py:version_problem(timeout)": "git --version, at start",
    "sources/kubernetes.py:KubernetesSource.first_list_wait": "the first list, at start",
    "sources/kubernetes.py:KubernetesSource.start(wait)": "the first list, at start",
    "sources/kubernetes_jobs.py:JobWatch.start(wait)": "the first lists, at start",
    "sources/kubernetes_watch.py:Informer.start(wait)": "the first list, at start",
}
COUNTED = {
    "HTTP_STOP_WAIT",
    "FORGET_WAIT",
    "ANSWER_WAIT",
    "THREADS_WAIT",
    "LEAVE_WAIT",
    "_KILL_AGAIN",
    "SHUTDOWN_SECONDS",
    "STOP_WAIT",
    "DROP_WAIT",
    "sinks/kubernetes.py:StatusWriter.stop(timeout)",
    "sinks/kubernetes_events.py:EventRecorder.stop(timeout)",
}
# Waits on the stop's path that no bound counted here covers yet: known gaps of the stop, each
# asserted below (a strict xfail), so that its fix shows here. None now.
NOT_BOUNDED_YET: dict[str, str] = {}
# A name that says it waits: ``wait`` or ``timeout`` one of its words (``_``-separated).
WAITING = re.compile(r"(?:^|_)(?:wait|timeout)(?:_|$)", re.IGNORECASE)


def _number(value: ast.expr) -> bool:
    """A number written out (``5.0``, ``-1``, ``(10, 30)``)."""
    if isinstance(value, ast.UnaryOp):
        return _number(value.operand)
    if isinstance(value, ast.Tuple):
        return bool(value.elts) and all(_number(e) for e in value.elts)
    return isinstance(value, ast.Constant) and type(value.value) in (int, float)


def _defaults(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[tuple[str, ast.expr]]:
    args = fn.args
    positional = args.posonlyargs + args.args
    pairs = zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True)
    keywords = zip(args.kwonlyargs, args.kw_defaults, strict=True)
    return [(a.arg, d) for a, d in [*pairs, *keywords] if d is not None]


def _waits_in(node: ast.AST, scope: str, found: dict[str, tuple[str, ...]]) -> None:
    """``found``: each wait's keys (its place, ``path:Scope.NAME`` or ``path:fn(param)``; a
    module's constant also by its bare name) -> the same keys, filled from ``node``'s body."""
    where, _, qual = scope.partition(":")
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            for param, default in _defaults(child):
                if WAITING.search(param) and _number(default):
                    key = f"{where}:{qual}{child.name}({param})"
                    found[key] = (key,)
            # Instance attributes (self.x_wait = 30.0) are the class's: its scope, not __init__'s.
            _waits_in(child, scope if child.name == "__init__" else f"{scope}{child.name}.", found)
        elif isinstance(child, ast.ClassDef):
            _waits_in(child, f"{scope}{child.name}.", found)
        elif isinstance(child, ast.Assign | ast.AnnAssign) and child.value is not None:
            targets = child.targets if isinstance(child, ast.Assign) else [child.target]
            for target in targets:
                name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)
                if name is None or not WAITING.search(name):
                    continue
                # A constant of any value but text (a timedelta, a SQL statement: the
                # setting's name or an environment variable's is no wait); others, numbers.
                constant = name.isupper() and not (
                    isinstance(child.value, ast.Constant) and isinstance(child.value.value, str)
                )
                if constant or _number(child.value):
                    key = f"{where}:{qual}{name}"
                    found[key] = (key, name) if not qual and name.isupper() else (key,)
        else:
            _waits_in(child, scope, found)


def written_waits() -> dict[str, tuple[str, ...]]:
    """Every wait written in ``reconciler/``: its place -> the keys it may be listed by."""
    found: dict[str, tuple[str, ...]] = {}
    for path in sorted(RECONCILER.rglob("*.py")):
        where = path.relative_to(RECONCILER).as_posix()
        _waits_in(ast.parse(path.read_text()), f"{where}:", found)
    return found


def test_every_written_wait_is_counted_or_said_off_the_stop_path() -> None:
    found = written_waits()
    assert len(found) > 30, f"the scan found too few waits: it no longer reads the code {found}"
    listed = COUNTED | set(OFF_THE_STOP_PATH) | set(NOT_BOUNDED_YET)
    assert not COUNTED & set(OFF_THE_STOP_PATH), "both counted and said off the path"
    unknown = sorted(place for place, keys in found.items() if not listed & set(keys))
    assert not unknown, f"waits neither counted in stop_path() nor said off its path: {unknown}"
    keys = {k for ks in found.values() for k in ks}
    gone = sorted(listed - keys - {"_HURRIED_RECORDS", "_KILL_AGAIN", "SHUTDOWN_SECONDS"})
    assert not gone, f"listed here, no longer in the code: {gone}"


def test_the_scan_sees_every_way_a_wait_is_written() -> None:
    """Honest: a wait the scan could not see would be left uncounted without a failure."""
    code = (
        "LEAVE_WAIT = 2.0\n"
        "class Part:\n"
        "    WAIT = 3\n"
        "    connect_timeout: float = 1.5\n"
        "    NAME_TIMEOUT = 'not-a-wait-but-a-name'\n"
        "    def __init__(self, wait: float = 30.0) -> None:\n"
        "        self.first_wait = 10.0\n"
        "    def stop(self, *, timeout: float = 5.0, grace: float = 1.0) -> None: ...\n"
        "async def drain(timeout=(1, 2), count=3): ...\n"
    )
    found: dict[str, tuple[str, ...]] = {}
    _waits_in(ast.parse(code), "x.py:", found)
    assert found == {
        "x.py:LEAVE_WAIT": ("x.py:LEAVE_WAIT", "LEAVE_WAIT"),
        "x.py:Part.WAIT": ("x.py:Part.WAIT",),
        "x.py:Part.connect_timeout": ("x.py:Part.connect_timeout",),
        "x.py:Part.__init__(wait)": ("x.py:Part.__init__(wait)",),
        "x.py:Part.first_wait": ("x.py:Part.first_wait",),
        "x.py:Part.stop(timeout)": ("x.py:Part.stop(timeout)",),
        "x.py:drain(timeout)": ("x.py:drain(timeout)",),
    }


def test_the_single_lease_release_fits_in_the_runs_grace() -> None:
    assert build_parser().parse_args(["run", "x"]).shutdown_grace >= RELEASE_WAIT


def _covers(spec: dict[str, Any], ha: bool) -> None:
    stop = sum(stop_path(ha).values())
    grace = spec["terminationGracePeriodSeconds"]
    assert grace >= stop + MARGIN, (grace, stop, stop_path(ha))


def test_the_http_stop_wait_cuts_no_request_that_is_only_slow() -> None:
    """A request waiting on the store (a page of history) or on a run's decision ends by
    itself within its own wait: the stop leaves it that long before cutting it."""
    assert max(PAGE_READ_WAIT, DECISION_WAIT) <= HTTP_STOP_WAIT


def test_grace_covers_the_whole_stop() -> None:
    _covers(pod(), ha=False)


def test_grace_covers_the_whole_stop_with_replicas(tmp_path: Path) -> None:
    objects = kustomize(with_components(tmp_path, "ha"))
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    _covers(deployment["spec"]["template"]["spec"], ha=True)


def test_a_leases_delete_fits_in_the_leave_wait() -> None:
    """The stop counts LEAVE_WAIT for leaving the replicas: a Lease's DELETE, with its connect
    and read timeouts, is not cut short by it."""
    assert sum(CALL_TIMEOUT) <= LEAVE_WAIT
