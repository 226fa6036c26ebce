"""The action seam: what one attempt of a run does.

A task's spec names exactly one action (``command``, ``http``, ...). For each action field an
:class:`Action` builds an :class:`Attempt` for one attempt of one run; ``await attempt.run()``
performs it once and reports an :class:`Outcome`. Failures of the work itself (a non-zero
exit, a refused connection, a timeout) are outcomes, never exceptions; an exception out of
``run()`` is a bug of the action, and the dispatcher records it as a failed attempt.

``stop(reason)`` may come before ``run()`` (the run was replaced or shut down while its claim
was on its way to the store), during it, or after it: before, ``run()`` reports the stop
without doing anything; during, the work is stopped and ``run()`` returns ``FAILED`` with that
reason; after, it changes nothing. Policies (concurrency, deadlines, retries) and records are
the dispatcher's, not the action's.

Work that outlives the process (a Kubernetes Job) is not stopped at shutdown: such an attempt
has ``outlives_process = True``, and ``stop("Shutdown")`` makes ``run()`` return an outcome
whose status is ``RUNNING`` (*detached*): the run's record stays ``running`` and the next
crontask to own the task adopts it (:class:`Resumable`).

:class:`Actions` is the registry the dispatcher asks: adding an action is one new module that
implements :class:`Action`, and one entry where the registry is built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from datetime import UTC
from typing import Protocol, TypeGuard, runtime_checkable

from reconciler.core.desired import Definition
from reconciler.core.runs import JobDetails, RunRecord, RunStatus, split_key


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    status: RunStatus  # SUCCEEDED, FAILED or TIMED_OUT
    exit_code: int | None  # a process's exit code (128 + N for signal N), an HTTP status
    reason: str | None  # CamelCase; None on success
    message: str  # one human-readable line
    output: str  # the kept tail of the output, with a truncation marker when cut
    pid: int | None = None  # the process, for actions that start one
    job: JobDetails | None = None  # the Kubernetes Job, for the job action
    # False: a further attempt would do the work again (an HTTP request the server took, its
    # status one expectStatus accepts, whose body then broke off or came too late).
    retryable: bool = True

    @property
    def detached(self) -> bool:
        """The work goes on outside this process; its record stays ``running``."""
        return self.status is RunStatus.RUNNING


class Attempt(Protocol):
    """One attempt of one run (see the module docstring)."""

    async def run(self) -> Outcome: ...

    def stop(self, reason: str) -> None: ...


# The reason of an attempt that did not begin because its instant had long passed (``StartsAt``).
TOO_LATE = "TooLate"


@runtime_checkable
class StartsAt(Protocol):
    """An attempt that says when its work began (the instant its process started), and can
    be told to begin at an instant ahead (its slot, when the run was decided and claimed ahead
    of it), which it waits for itself: more precisely than a timer of the event loop, which a
    busy loop serves late."""

    def start_at(
        self, when: float | None, began: Callable[[float], None], until: float | None = None
    ) -> None:
        """Begin ``run()``'s work no earlier than ``when`` (None: at once), on
        ``time.monotonic()``'s clock (the event loop's), and call ``began(instant)`` on the
        loop once it has begun, with the instant it did on the same clock. Not called if the
        work never began. Past ``until`` (same clock; None: never) it does not begin: ``run()``
        then returns at once, its reason :data:`TOO_LATE` (the process was away when the
        instant came, SIGSTOP or a frozen VM, and the caller must look again before it starts
        anything)."""


class StartingAttempt(Attempt, StartsAt, Protocol):
    """An attempt that is also :class:`StartsAt`."""


_STARTING: set[type] = set()  # classes whose own start_at makes each of their instances one


def starts_at(attempt: Attempt | None) -> TypeGuard[StartingAttempt]:
    """``isinstance(attempt, StartsAt)``, kept per class when its class makes it one (as each
    command's does): Python 3.11 walks a runtime protocol's members on every such check, and
    this one is made for every run. Any other object is checked each time (an attribute of its
    own may make it one)."""
    kind = type(attempt)
    if kind in _STARTING:
        return True
    found = isinstance(attempt, StartsAt)
    if found and callable(getattr(kind, "start_at", None)):
        _STARTING.add(kind)
    return found


class Action(Protocol):
    """Builds attempts for the tasks whose spec sets ``field``."""

    @property
    def field(self) -> str: ...

    def attempt(self, definition: Definition, record: RunRecord) -> Attempt: ...


class Resumable(Protocol):
    """An action whose work outlives the process that started it (a Kubernetes Job): the runs
    of a task that go on outside any process this one tracks, and an attempt that follows one
    of them to its end without starting anything (its record is ``running`` and names the
    work, as the action wrote it)."""

    def running(self, task: str) -> list[RunRecord]: ...

    def resume(self, record: RunRecord) -> Attempt: ...

    def changed(self, definition: Definition, record: RunRecord) -> bool:
        """Whether ``definition`` is not the one the work of ``record`` was started from."""
        ...


class UnknownAction(LookupError):
    """The spec sets no action this registry has (a bug, or a registry built without it)."""


class Actions:
    """The actions a dispatcher can run, by spec field."""

    def __init__(self, actions: Iterable[Action]) -> None:
        self._by_field = {action.field: action for action in actions}

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self._by_field)

    def attempt(self, definition: Definition, record: RunRecord) -> Attempt:
        spec = definition.task.spec
        for field, action in self._by_field.items():
            if getattr(spec, field, None) is not None:
                return action.attempt(definition, record)
        raise UnknownAction(f"{definition.key}: no registered action ({', '.join(self.fields)})")


def run_environment(record: RunRecord) -> dict[str, str]:
    """The ``CRONTASK_*`` variables that identify a run to the work it does."""
    namespace, name = split_key(record.task)
    return {
        "CRONTASK_NAME": name,
        "CRONTASK_NAMESPACE": namespace,
        "CRONTASK_RUN_ID": record.id,
        "CRONTASK_SCHEDULED_TIME": record.scheduled_at.astimezone(UTC).isoformat(),
        "CRONTASK_ATTEMPT": str(record.attempt),
    }


def failed(reason: str, message: str, *, status: RunStatus = RunStatus.FAILED) -> Outcome:
    """An outcome for an attempt that did no work (it could not start, it was stopped)."""
    return Outcome(status, None, reason, message, "")


__all__ = [
    "Action",
    "Actions",
    "Attempt",
    "Outcome",
    "Resumable",
    "UnknownAction",
    "failed",
    "run_environment",
    "starts_at",
]
