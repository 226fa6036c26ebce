"""The Deployment's ``terminationGracePeriodSeconds`` covers crontask's whole stop with the
default options, in the worst case (a task that ignores SIGTERM, a run store and an API server
that take requests and never answer, a notification receiver that hangs), so that the
kubelet's SIGKILL does not come before the records are written or said lost.

The stop is sequential (``controller.manager`` stops the components one after the other, last
started first): every bounded wait on its path is listed here, each read from the code that
waits (its constant, or the default of the parameter it waits with), never copied. A wait
named ``*_WAIT`` or ``*_TIMEOUT`` anywhere in ``reconciler/`` must be either on the path (in
:func:`stop_path`) or said to be off it (``OFF_THE_STOP_PATH``), so that a new one fails here
until it is counted."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.api.run_decision import DECISION_WAIT
from reconciler.cli.main import build_parser
from reconciler.controller.heartbeat import FORGET_WAIT
from reconciler.controller.lane import ANSWER_WAIT
from reconciler.controller.runtime import THREADS_WAIT
from reconciler.controller.stops import _KILL_AGAIN
from reconciler.controller.store_calls import PAGE_READ_WAIT
from reconciler.membership.leases import CALL_TIMEOUT
from reconciler.membership.single import RELEASE_WAIT
from reconciler.sinks.kubernetes import StatusWriter
from reconciler.sinks.kubernetes_events import EventRecorder
from reconciler.sinks.notify_delivery import SHUTDOWN_SECONDS
from reconciler.sources.kubernetes_watch import Informer, stop_all
from tests.deploy.test_manifests import kustomize, pod, with_components

RECONCILER = Path(__file__).resolve().parents[2] / "reconciler"

# What the grace keeps beyond the sum: a slow node, the threads' joins (1 s each, not named
# constants: reconciler/sinks/kubernetes.py, kubernetes_events.py), Python's start and exit.
MARGIN = 15.0


def _timeout_default(stop: Callable[..., None]) -> float:
    default = inspect.signature(stop).parameters["timeout"].default
    assert isinstance(default, float)
    return default


def stop_path(ha: bool) -> dict[str, float]:
    """The waits of a stop, in order, in seconds."""
    defaults = build_parser().parse_args(["run", "x"])
    waits = {
        # Stopped first: uvicorn's graceful stop waits for the requests in flight, each bounded
        # by the API's longest wait for the store (a page of history) or for a run's decision.
        "http: requests in flight": max(PAGE_READ_WAIT, DECISION_WAIT),
        # Runs: their grace, SIGTERM then SIGKILL after the kill grace, SIGKILL again after
        # _KILL_AGAIN, the store's answer to their end records (then kept for later), and the
        # wait for the records kept for later (--shutdown-grace again: RunStops.shutdown).
        "runs: --shutdown-grace": defaults.shutdown_grace,
        "runs: --kill-grace": defaults.kill_grace,
        "runs: killed again": _KILL_AGAIN,
        "runs: the end record's answer": ANSWER_WAIT,
        "runs: records kept for later (--shutdown-grace)": defaults.shutdown_grace,
        # --ha leaves the replicas: its Lease's DELETE, connect and read timeouts.
        **({"ha: leaving (the Lease's delete)": sum(CALL_TIMEOUT)} if ha else {}),
        "kubernetes: the CronTask watch": _timeout_default(Informer.stop),
        # The Job watches (one a namespace with job tasks), stopped together: one wait in all.
        "kubernetes: the Job watches": _timeout_default(stop_all),
        # The Event recorder and the status writer flush what is queued (controller.kube passes
        # their timeouts; at most the default of each).
        "kubernetes: Events flushed": _timeout_default(EventRecorder.stop),
        "kubernetes: statuses flushed": _timeout_default(StatusWriter.stop),
        "heartbeat: this crontask's row removed": FORGET_WAIT,
        "notifications: delivered or dropped": SHUTDOWN_SECONDS,
        "serve: crontask's own threads": THREADS_WAIT,
        "cli.daemon: the threads again, before the exit": THREADS_WAIT,
    }
    return waits


# Waits named so that are not on the stop's sequential path, and why.
OFF_THE_STOP_PATH = {
    "RELEASE_WAIT": "the single Lease's release begins with the stop, during the runs' grace",
    "LIST_READ_WAIT": "an API read, shorter than PAGE_READ_WAIT (counted)",
    "READ_WAIT": "a signed webhook's secret file read: an API request, within PAGE_READ_WAIT",
    "ON_LOOP_TIMEOUT": "an API write's hop to the loop: an API request, within PAGE_READ_WAIT",
    "PING_TIMEOUT": "/readyz's store ping, not made at stop",
    "MAX_WAIT": "crontask trigger's client-side wait (--max-wait), another process",
    "COLLECTION_TIMEOUT": "git maintenance, not run at stop",
    "DELETE_TIMEOUT": "a Job's delete: Jobs outlive the process, detached at stop",
    "_DRAIN_TIMEOUT": "pipes read after a process ended: within the runs' and git's graces",
    "_HURRIED_RECORDS": "after a second stop signal only, which shortens the stop",
    "LOCK_WAIT": "store locks (migrations, PostgreSQL lock_timeout): under ANSWER_WAIT's bound",
    "READ_LOCK_WAIT": "the store's open, before crontask starts",
    "WRITE_LOCK_WAIT": "a write's lock wait, bounded for the stop by ANSWER_WAIT (counted)",
    "SQLITE_BUSY_TIMEOUT": "background writes (pruning), not awaited by the stop",
    "PG_IDLE_IN_TRANSACTION_TIMEOUT": "the server's limit on a session, not a wait of crontask",
}
COUNTED = {
    "FORGET_WAIT",
    "ANSWER_WAIT",
    "THREADS_WAIT",
    "PAGE_READ_WAIT",
    "DECISION_WAIT",
    "CALL_TIMEOUT",
    "_KILL_AGAIN",
    "SHUTDOWN_SECONDS",
}
WAIT_NAME = re.compile(r"^(_?[A-Z][A-Z0-9_]*(?:_WAIT|_TIMEOUT))\b(?:: [^=]+)? =", re.MULTILINE)


def test_every_named_wait_is_counted_or_said_off_the_stop_path() -> None:
    named = {m for path in RECONCILER.rglob("*.py") for m in WAIT_NAME.findall(path.read_text())}
    assert named, "the pattern found no wait: it no longer matches the code"
    unknown = named - COUNTED - set(OFF_THE_STOP_PATH)
    assert not unknown, f"waits neither counted in stop_path() nor said off its path: {unknown}"
    listed = {n for n in COUNTED | set(OFF_THE_STOP_PATH) if n.endswith(("_WAIT", "_TIMEOUT"))}
    gone = listed - named
    assert not gone, f"listed here, no longer in the code: {gone}"


def test_the_single_lease_release_fits_in_the_runs_grace() -> None:
    assert build_parser().parse_args(["run", "x"]).shutdown_grace >= RELEASE_WAIT


def _covers(spec: dict[str, Any], ha: bool) -> None:
    stop = sum(stop_path(ha).values())
    grace = spec["terminationGracePeriodSeconds"]
    assert grace >= stop + MARGIN, (grace, stop, stop_path(ha))


def test_grace_covers_the_whole_stop() -> None:
    _covers(pod(), ha=False)


def test_grace_covers_the_whole_stop_with_replicas(tmp_path: Path) -> None:
    objects = kustomize(with_components(tmp_path, "ha"))
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    _covers(deployment["spec"]["template"]["spec"], ha=True)
