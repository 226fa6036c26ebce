"""The answer to a run asked for now (``POST /api/v1/tasks/{namespace}/{name}/runs``): with
replicas, it waits for the shared store's decision, a claim or a skip, within a bound.

Its 503s say by their problem type whether a run may have been started, as a run asked for is
not idempotent (asked again after it was taken, the task runs twice): ``not-started`` (nothing
was run or recorded: asking again is safe, and ``crontask trigger`` does, after
``Retry-After``) and ``run-undecided`` (the run starts if the store takes its claim, or the
scheduler did not take the trigger in time but has it: look before asking again)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from reconciler.api.problems import ProblemError
from reconciler.controller.claims import STORE_UNAVAILABLE
from reconciler.controller.replace_wait import WAIT_MAX
from reconciler.controller.view import RuntimeView, Triggered
from reconciler.core.model import ConcurrencyPolicy
from reconciler.core.runs import NOT_STARTED, RunRecord, RunStatus
from reconciler.resolver import in_own_thread
from reconciler.store import RunStore, StoreUnavailable

# With replicas, how long a manual run's answer waits for the store's decision, and the least
# a read begun just before then gets: the answer comes within their sum, below the CLI's 10 s.
DECISION_WAIT: Final = 5.0
READ_MARGIN: Final = 0.5
# The problem types of the 503s (see the module). ``cli.remote`` holds its own copies (the
# command line does not load the API); tests/api/test_trigger_problem_types.py keeps them equal.
NOT_STARTED_KIND: Final = "not-started"
UNDECIDED_KIND: Final = "run-undecided"


def decided(runtime: RuntimeView, fired: Triggered) -> tuple[RunRecord, str | None]:
    """``fired``'s record once it is decided, and, a run not started yet, why (None: it
    started, or is skipped). A ``Replace`` run launched here (``Triggered.start``) is
    ``running`` once the dispatcher says its process started, with that start: not before,
    as its record (with replicas, its claim) says ``running`` from its decision. Until then it
    waits: for the runs it replaces to stop (a command within its kill grace) and their Jobs
    to be gone (``controller.replace_wait``), here or on another replica (its claim); for its
    claim, a slow store's (up to the lane's answer wait), and its spawn. A run still waiting
    at ``DECISION_WAIT`` is ``pending``, which it is; one that ended without beginning is
    answered as the dispatcher holds its end (``Start.end``), at once. Other runs are answered
    by their decision (with replicas, the store's). Its words, and what a store that does not
    answer means, are by the definition the run was fired by (``fired``), not the desired
    state now: the task may have been changed or removed since (the run goes on)."""
    deadline = time.monotonic() + DECISION_WAIT
    record, start = fired.record, fired.start
    if record.status is not RunStatus.RUNNING or start is None:
        # Skipped as it fired, or not followed to its start (not Replace): decided (with
        # replicas, by the store, within the same bound).
        return _decision(runtime, fired, stored_too=False, until=deadline)[0], None
    if start.wait(deadline - time.monotonic()):
        if start.began is not None:
            return start.began, None  # started, when it did
        return _not_begun(runtime, fired, start.ended, start.why)
    if runtime.replacing(record.id):
        return record, _pending_why(runtime, fired.job, elsewhere=start.elsewhere)
    # Its claim not answered yet, or its process not spawned: with replicas, a store that does
    # not answer is said as ever (``_decision``, one read more), and a skip answered as such.
    found = _decision(runtime, fired, stored_too=False, until=deadline)[0]
    if found.status is RunStatus.SKIPPED:
        return found, None
    if start.began is not None:  # begun since the wait ran out: not "pending", stale
        return start.began, None
    return record, NOT_BEGUN_YET


# Why a run asked for is ``pending`` when it waits for neither a run it replaces nor ...
NOT_BEGUN_YET: Final = (
    "not started yet: its claim waits for the run store, or its process to be spawned; "
    "look at its run"
)


def _not_begun(
    runtime: RuntimeView, fired: Triggered, ended: RunRecord | None, why: str | None
) -> tuple[RunRecord, str | None]:
    """A run that ended without beginning, or whose first attempt did and a retry waits
    (``Start.end``): ``ended``, its end as the dispatcher holds it (written from the store's
    own threads, it may not be in the store yet), or, nothing recorded (or not yet), ``why``.
    Never ``running``, which it never was. With replicas, a run skipped as its claim could
    not look for a run on another replica (``STORE_UNAVAILABLE``) is answered as the store's
    silence is under Forbid and Replace, the ``503`` the README promises (``_unanswered``)."""
    if ended is None:
        return fired.record, why
    if ended.reason == STORE_UNAVAILABLE and runtime.members() is not None:
        return _unanswered(fired.record, fired.policy), None
    return ended, None


def _pending_why(runtime: RuntimeView, job: bool, *, elsewhere: bool = False) -> str:
    """Why a run waiting for the runs it replaces is not started, by its action (``job``: a
    ``job`` task's run, as it was fired), and by where the run it waits for is (``elsewhere``:
    on another replica, its claim waiting in the store for it to stop)."""
    if elsewhere:
        return (
            "not started: it waits for the run it replaces on another replica to stop "
            "(concurrencyPolicy Replace; that replica is asked through the run store); it "
            "starts then: look at its run"
        )
    claim = "" if runtime.members() is None else "; its claim is recorded running meanwhile"
    blocked = f"recorded skipped (ReplaceBlocked) at most {WAIT_MAX:g}s after it was asked for"
    if job:
        return (
            "not started: it waits for the Job of the run it replaces to be deleted "
            f"(concurrencyPolicy Replace); it starts once that Job is gone, or is {blocked}"
            f"{claim}: look at its run"
        )
    return (
        "not started: it waits for the run it replaces to stop (concurrencyPolicy Replace; a "
        f"command is given --kill-grace after SIGTERM); it starts then{claim}: look at its run"
    )


def decision(
    runtime: RuntimeView,
    fired: Triggered,
    *,
    stored_too: bool = False,
    until: float | None = None,
) -> tuple[RunRecord, bool]:
    """``fired``'s record once it is decided, and whether the store was seen to hold it. With
    replicas, a run asked for is ``running`` at once, but whether it may start is the shared
    store's to say (a run of the task may be going on another replica, and Forbid then skips
    this one): the answer waits until the store holds the run's first record, its claim or
    its skip (up to ``DECISION_WAIT``, or to ``until``, a ``time.monotonic()`` deadline; after
    that the run goes on as its claim waits). A store that does not answer is not read again.

    ``stored_too`` (the status page, which answers with the run's page, read from the store):
    a run decided here (alone, or skipped here) is waited for as well, as its record is
    written from the store's own threads (``controller.recorder``) and may not be there yet
    (or, a ``Replace`` run, not before the run it replaces has stopped)."""
    return _decision(runtime, fired, stored_too=stored_too, until=until)


def _decision(
    runtime: RuntimeView, fired: Triggered, *, stored_too: bool, until: float | None
) -> tuple[RunRecord, bool]:
    """:func:`decision`, ``fired.policy`` (its task's as the run was fired) saying what a store
    that does not answer means for it."""
    record = fired.record
    refuse_not_started(record)
    store_decides = record.status is RunStatus.RUNNING and runtime.members() is not None
    if not (store_decides or stored_too):
        return record, False  # alone, or skipped here: the dispatcher decided it already
    deadline = time.monotonic() + DECISION_WAIT if until is None else until
    try:
        stored = _look(runtime.store, record, deadline, lambda _: True)
    except (StoreUnavailable, TimeoutError):
        return (_unanswered(record, fired.policy) if store_decides else record), False
    if stored is None:
        return record, False
    # Skipped, or claimed: started (it may even have ended since, still "running").
    return (stored if stored.status is RunStatus.SKIPPED else record), True


def _look(
    store: RunStore, record: RunRecord, deadline: float, found: Callable[[RunRecord], bool]
) -> RunRecord | None:
    """``record`` as ``store`` holds it, once what it holds is ``found``, read again until
    ``deadline`` (a ``time.monotonic()`` instant; a read begun before it gets ``READ_MARGIN``
    at least); None if not by then. Raises StoreUnavailable, or TimeoutError for a store that
    did not answer a read in time: it is not read again."""
    pause = 0.005
    while True:
        stored = _read(store, record, max(deadline - time.monotonic(), READ_MARGIN))
        if stored is not None and found(stored):
            return stored
        if time.monotonic() >= deadline:
            return None
        time.sleep(pause)  # an endpoint runs in the threadpool, never on the event loop
        pause = min(pause * 2, 0.1)


def refuse_not_started(record: RunRecord) -> None:
    """A manual run this replica may not start now (``NOT_STARTED``: its membership was not
    renewed in time, or crontask is stopping) is answered 503: it was neither run nor recorded
    (its ``Location`` would name nothing), and asked again soon it runs."""
    if record.status is RunStatus.SKIPPED and record.reason == NOT_STARTED:
        raise ProblemError(
            503,
            f"run of {record.task} not started: {record.message}; retry later",
            kind=NOT_STARTED_KIND,
            title="Not started",
            headers={"Retry-After": "5"},
        )


def scheduler_unanswered(key: str) -> ProblemError:
    """The 503 of a trigger the scheduler's loop did not take in time (``TimeoutError``): it
    was handed over all the same, and the run may still start; the app's own answer to a
    timeout ("retry later") would have a client run the task twice. Without ``Retry-After``,
    as every run-undecided 503: a client that honours it would ask again, and might."""
    return ProblemError(
        503,
        f"the scheduler did not answer in time: a run of {key} may still start; look at its "
        "runs before asking again",
        kind=UNDECIDED_KIND,
        title="Run not decided",
    )


def _read(store: RunStore, record: RunRecord, wait: float) -> RunRecord | None:
    """``store.get`` of ``record``, for ``wait`` seconds at most (then TimeoutError): a store
    that never answers holds a call for the driver's timeouts (PostgreSQL's connect_timeout
    alone is 10 s), in a daemon thread of its own: not the endpoint, nor the exit."""
    read = in_own_thread(lambda: store.get(record.id, record.attempt), "crontask-run-decision")
    return read.result(timeout=wait)


def _unanswered(record: RunRecord, policy: ConcurrencyPolicy) -> RunRecord:
    """The store did not answer, nor, then, the run's claim made meanwhile. Under Allow the
    run goes on all the same; under Forbid and Replace it is recorded skipped unless the store
    takes its claim after all (StoreUnavailable, ``controller.claims``): a 503 says so.
    ``policy``: the task's as the run was fired (it may be changed or removed since)."""
    if policy is ConcurrencyPolicy.ALLOW:
        return record
    raise ProblemError(
        503,
        f"the run store did not answer, so a run of {record.task} on another replica could "
        f"not be looked for (concurrencyPolicy {policy}): run {record.id} starts "
        "only if the store takes its claim, else it is recorded skipped (StoreUnavailable)",
        kind=UNDECIDED_KIND,
        title="Run not decided",
    )
