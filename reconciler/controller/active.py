"""A run in flight, and the reasons it is stopped for.

``ActiveRun`` is what the dispatcher holds of each run between its claim and its last record
(``controller.execution`` carries it through its attempts): the current attempt and its record,
its claim, and why it was stopped. A stop may come before there is anything to stop (its claim
still on its way to the store, a retry waiting): the reason is kept and applied as soon as
there is. The reasons are the ones its records give; the dispatcher, the reconciler and the
cluster stop runs with them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading

from reconciler.core.runs import RunRecord
from reconciler.runner.base import Attempt

SHUTDOWN = "Shutdown"
REPLACED = "Replaced"
TASK_REMOVED = "TaskRemoved"
TASK_CHANGED = "TaskChanged"
HANDED_OVER = "HandedOver"
# Its record was ended by another replica while this one's membership had lapsed: stopped, and
# its end is not recorded here (``controller.disowned``).
DISOWNED = "Disowned"
# Why a run or retry of a task handed away and back after a lapse did not start (its record's
# ``HandedOver`` message, formatted with what it is): the task may never have moved.
LAPSED = (
    "this replica's membership lapsed (another replica may have run the task meanwhile) "
    "before this {} could start"
)


@dataclasses.dataclass(eq=False)
class ActiveRun:
    record: RunRecord
    attempt: Attempt | None = None
    task: asyncio.Task[None] | None = None
    stop_reason: str | None = None
    # What its record says of why, when the reason alone does not (``Replace``: the Job that
    # still runs, ``controller.replace_wait``); None: what the reason says.
    stop_why: str | None = None
    # Why the run does not retry when its running attempt ends (its task was removed or
    # changed meanwhile: ``Dispatcher.cancel_retries``); the attempt itself goes on.
    no_retry: str | None = None
    waiting: bool = False  # between two attempts: nothing is running
    # Its record as another replica ended it, the one that stands: see DISOWNED.
    disowned: RunRecord | None = None
    begun: bool = False  # the current attempt's work began (``RunExecution._begin``)
    # The attempt's claim, when it was sent before: as the slot fired, or a retry's that
    # looks for another replica's run first (``SlotClaims._claim_retry``).
    claim: asyncio.Future[bool] | None = None
    # The attempt waits for its claim's answer (``RunExecution._run_attempt``): nothing of it
    # has started, and it starts once the claim is taken, unless it is stopped first.
    claiming: bool = False
    # When the first attempt may begin (the loop's clock): its slot, when it was handed over
    # ahead of it; None: at once.
    start_at: float | None = None
    # When it was decided (the loop's clock; None: adopted): with replicas, a first attempt's
    # claim is sent then, so how long the store has held it counts from here (``_overtaken``).
    decided_at: float | None = None
    # A manual Replace run's: what its answer waits for (``api.run_decision``); None for the
    # others, answered by their decision (nothing to wait for but the spawn, not worth a wait).
    start: Start | None = None
    # Made only when a retry, or a run for those it replaces, waits (most runs never need one).
    _stopped: asyncio.Event | None = None
    # Set while the attempt waits for its claim's answer (``controller.not_started``): a stop
    # ends that wait, as it ends a retry's.
    _woken: asyncio.Future[None] | None = None

    def stop(self, reason: str, why: str | None = None) -> None:
        """Stop the run, also when its process has not been spawned yet (its claim may still
        be on its way to the store) or while it waits for a retry: the reason (and ``why``,
        for its record) is kept and applied as soon as there is something to stop."""
        if self.stop_reason is None:
            self.stop_reason, self.stop_why = reason, why
        if self._stopped is not None:
            self._stopped.set()
        if self._woken is not None and not self._woken.done():
            self._woken.set_result(None)
        if self.attempt is not None:
            self.attempt.stop(self.stop_reason)

    def woken(self) -> asyncio.Future[None]:
        """A future done once the run is stopped (at once if it was): what waits for its
        claim's answer waits for it too (``controller.not_started``), as does an end held
        after a lapse (``controller.disowned``)."""
        woken = self._woken = asyncio.get_running_loop().create_future()
        if self.stop_reason is not None:
            woken.set_result(None)
        return woken

    async def wait_stopped(self, seconds: float | None) -> bool:
        """Wait up to ``seconds`` (None: until stopped); True if the run was stopped before
        or meanwhile."""
        if self.stop_reason is not None:
            return True
        if self._stopped is None:
            self._stopped = asyncio.Event()
        self.waiting = True
        try:
            await asyncio.wait_for(self._stopped.wait(), seconds)
        except TimeoutError:
            return False
        finally:
            self.waiting = False
        return True

    async def outwait(self, replaced: asyncio.Task[None]) -> None:
        """Wait for ``replaced`` (the task of a run this one replaces) to end, or for this run
        to be stopped first: then it never begins, and waits for nothing. A run a newer one
        replaced before it began held its place among the manual runs going, and its
        answer's wait, until a run deaf to its stop ended (a kill grace), and a burst of them
        took every task's places. Not ``waiting`` meanwhile: no attempt of it has been made."""
        if self.stop_reason is not None:
            return
        if self._stopped is None:
            self._stopped = asyncio.Event()
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:  # ``replaced`` is not cancelled with this wait: it is another run's
            await asyncio.wait({replaced, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()

    def not_begun(self, record: RunRecord | None, why: str | None = None) -> None:
        """It ended without beginning (``record``: its end, as recorded; None: nothing is, and
        ``why`` says why), or its first attempt did and a retry waits: a manual ``Replace``
        run's answer is that, at once (``Start.end``; the others' are not waited for)."""
        if self.start is not None:
            self.start.end(record, why)


class Start:
    """Whether a manual ``Replace`` run began (``RunExecution._begin``: its process started) or
    ended without beginning, for the answer to the run asked for (``api.run_decision``). Set on
    the loop, waited for in a thread of the API's. Until it is set the run waits: for the runs
    it replaces (here, or on another replica: ``elsewhere``), for its claim, for its process;
    it is not ``running``, whatever its record says (its claim, with replicas)."""

    def __init__(self) -> None:
        self._decided = threading.Event()
        self.began: RunRecord | None = None  # its record as it began, with its real start
        # Ended without beginning: the record the dispatcher holds of that end (a skip, an
        # attempt that failed to start), the answer as it is, no store read; None when nothing
        # of it is recorded, or, a retry scheduled, not yet (``why`` says it then).
        self.ended: RunRecord | None = None
        self.why: str | None = None
        # Its claim waits for a run of its task on another replica to stop (``Replace``:
        # ``SlotClaims._claim_exclusive``). A plain field: one write, read from any thread.
        self.elsewhere = False

    def begin(self, record: RunRecord) -> None:
        """It began: ``record`` starts when it did (its first attempt; a retry is no news)."""
        if not self._decided.is_set():
            self.began = record
            self._decided.set()

    def end(self, record: RunRecord | None, why: str | None = None) -> None:
        """It ended without beginning, or will not begin soon: ``record``, the end the
        dispatcher holds (the skip, which says why), or None and ``why`` (nothing of it
        recorded, or a retry scheduled). The first word stands: one that began said so."""
        if not self._decided.is_set():
            self.ended, self.why = record, why
            self._decided.set()

    def wait(self, seconds: float) -> bool:
        """Whether it began or ended within ``seconds``."""
        return self._decided.wait(max(seconds, 0.0))
