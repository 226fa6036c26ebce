"""Failure notifications: which runs and passes make a message, and for which receivers.

The controller reports through two O(1) calls on the event loop, so a notification never
slows a run: :meth:`Notifier.on_run` (the dispatcher's run listener) and
:meth:`Notifier.after_pass` (a pass observer), which only keep what they are handed. Everything
else happens in the notifier's own component (:meth:`Notifier.run`): deciding what changed,
routing (``notify_routes``), and rendering each message (``notify_payload``) for
``notify_delivery``, which delivers it over HTTP, one sender per receiver, each with a bounded
queue, retries and backoff; its module docstring says how. A pass may bring 100 000 new
definition errors, and runs end by the ten thousand: the component finds a pass's new errors in
a thread, and routes errors and runs :data:`YIELD_EVERY` at a time, letting the event loop run
between them (runs start on time meanwhile, and ``/healthz`` answers): ``notify_errors``.

**What counts.** A run counts when it has ended for good: succeeded, or failed / timed out
with no retry to follow, or interrupted (not by crontask's own shutdown). Whether a retry
follows is the dispatcher's decision, made with the definition the run began with: it hands
such an attempt over as a ``RetriedAttempt``, and the run then ends with its next attempt, or,
if that one is abandoned (skipped: Replaced, TaskChanged, ...) or cut short by the shutdown,
with the failed attempt before it. Skipped slots count for nothing. A task's state is
``failing`` after a run that failed and ``ok`` after one that succeeded. Events:

- ``failed``: ok -> failing (a task failing every minute sends one message), and, with
  ``repeatInterval``, a reminder with the next failure once that long has passed since the
  route's last message about it;
- ``recovered``: failing -> ok. Either, if it did not reach a receiver (given up, or pushed
  out of a full queue), is sent to it again with the task's next run of the same outcome, as
  a reminder, once (``notify_owed``);
- ``everyFailure``: every run that ends failing;
- ``definitionError``: definition errors and conflicts that were not there after the last
  pass (those present at start-up are reported once), by what they are about
  (``problem_lines.Told``): one whose line moved (an edit above it, a new git revision) is not
  news. A message names its task when every error it tells names that one, else none. Each
  pass is compared with the one before it, in order (unless passes come faster than the
  component looks at them: see ``notify_errors``).

A task's state survives a restart: the first run of a task this process sees is compared with
the task's previous runs in the run store (``history``, read by ``notify_history``), failing
since the first of the failures they end with (each run judged as above: attempts cut short by
the shutdown left out). Whether its ``failed`` message reached the receivers does not survive
(it may have been queued, or retried, when the process stopped): so a task remembered as
failing sends ``failed`` again with its next failure, whatever ``repeatInterval`` says, marked
as a reminder (at least once; after a restart, perhaps twice). Nor does whether its
``recovered`` did: a task whose runs end with successes after failures that were told sends
``recovered`` again with its next success, as a reminder too, if this process had not looked
at the task before (``_read_back``); its next failure is a plain ``failed``.

**Runs a crash cut short** are marked ``interrupted`` (``PROCESS_DIED``) by the instance or
replica that finds them dead, in the run store: no dispatcher's listener hears of them. A
crontask on its own finds its predecessor's when it starts, and hands them to
:meth:`Notifier.crashed`: they count like any run that ended, once the first pass has said
which definitions are in force (routes match on them), and so does a crontask that finds such
runs of another's whose beat has stopped (``controller.heartbeat``), for the tasks it declares;
the records of the others say that nobody told of them. With replicas the one that finds such a
run need not own its task, and the owner would not hear of it, so they are not handed over
(``crashes_told`` False). A task whose failures since its last success are all runs nobody told
of was never announced as failing: its next success sends no ``recovered``, and its next
failure sends ``failed`` as a first message (failing since the first of them).

With replicas, a run is told of by the replica that runs it: only that replica's dispatcher
hears of its end. A scheduled slot or a catch-up runs on its task's owner (``mine``), or on the
one that owned it a moment before (the store's claim keeps a slot from running twice), and one
still going when its task moves to another replica is told of where it ends: the new owner
reads that end from the run store with the task's history, as told. A Job run the new owner
adopts (``controller.jobs``: it follows the Job too, and hears the same end) is told of there
alone: the replica it started on finds it taken over in the run store and leaves it; one that
ended before it was adopted is told of where it ran. A manual run is told of if
its task was this replica's when it started: one asked of a replica that does not own its task
is not. A definition error that names no task is reported by the owner of the empty key, one
replica. A task that leaves this replica (``after_pass``'s ``left``), or that may have run on
another one while this one was fenced (``forget``), is forgotten here: its state goes on
changing on its new owner, so if it comes back, or a run of it that was going here ends, it is
read from the run store again, as after a restart.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Final

import httpx

from reconciler.aio import ended, first_of
from reconciler.core.desired import Definition, DesiredState
from reconciler.core.model import TaskSpec
from reconciler.core.runs import RetriedAttempt, RunRecord, RunStatus, Trigger, died
from reconciler.core.status import FAILURES
from reconciler.sinks import notify_owed, notify_payload
from reconciler.sinks.notify_config import Event, Notifications

# Delivery's limits, re-exported: this module is the notifier's public face.
from reconciler.sinks.notify_delivery import MAX_ATTEMPTS as MAX_ATTEMPTS
from reconciler.sinks.notify_delivery import QUEUE_MAX as QUEUE_MAX
from reconciler.sinks.notify_delivery import SHUTDOWN_SECONDS as SHUTDOWN_SECONDS
from reconciler.sinks.notify_delivery import TIMEOUT_SECONDS as TIMEOUT_SECONDS
from reconciler.sinks.notify_delivery import Counter, Delivery, Message
from reconciler.sinks.notify_errors import YIELD_EVERY, ErrorNews
from reconciler.sinks.notify_history import History, TaskState, adopted, remembered, shut_down
from reconciler.sinks.notify_queue import MessageQueue
from reconciler.sinks.notify_routes import ERRORS_PER_MESSAGE as ERRORS_PER_MESSAGE
from reconciler.sinks.notify_routes import Routes

log = logging.getLogger("crontask.notify")

INTAKE_MAX: Final = 10_000  # records waiting to be looked at
RETRYING_MAX: Final = 10_000  # failed attempts whose retry is awaited
STARTED_MAX: Final = 100_000  # runs started here whose end is awaited
LOOKED_AT_MAX: Final = 100_000  # tasks known to have been looked at here (``_looked_at``)

Clock = Callable[[], datetime]


class Notifier:
    """See the module docstring. A component: ``name`` and ``run(ready, stop)``."""

    name = "notifications"

    def __init__(
        self,
        notifications: Notifications,
        *,
        metrics: Counter,
        mine: Callable[[str], bool] = lambda key: True,
        history: History | None = None,
        page_url: str | None = None,
        clock: Clock = lambda: datetime.now(UTC),
        backoff: float = 1.0,
        timeout: float = TIMEOUT_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
        crashes_told: bool = False,
    ) -> None:
        self.notifications = notifications
        # Whether runs a crash cut short are handed to ``crashed`` (see the module docstring).
        self.crashes_told = crashes_told
        self.config = notifications.config
        self.routes = Routes(self.config.routes)  # compiled once
        self.mine = mine
        self.history = history
        self.page_url = page_url
        self.clock = clock
        self.delivery = Delivery(
            notifications,
            metrics=metrics,
            backoff=backoff,
            timeout=timeout,
            transport=transport,
            # A "failed" or "recovered" lost is sent again with the task's next run.
            unsent=lambda message: notify_owed.unsent(self._states, message),
        )
        self._intake: collections.deque[RunRecord] = collections.deque()
        self._tasks: Mapping[str, Definition] | None = None  # until the first pass
        # Runs a crash cut short, found before the first pass: considered after it.
        self._crashed: list[RunRecord] = []
        self._states: dict[str, TaskState] = {}
        # Failed attempts whose retry is awaited, by run: the run's end if the retry is
        # abandoned.
        self._retrying: dict[str, RunRecord] = {}
        # Runs started here that are told of here (``_start``), by id, until their last attempt
        # ends: even if their task moves on meanwhile, as no other replica hears of that end
        # (but of a Job run's, which the new owner may adopt: see ``notify_history.adopted``).
        self._started: dict[str, None] = {}
        # Tasks whose state this process has read back, oldest first: a recovery read back is
        # told again only the first time (``_read_back``). Past the bound, the oldest is
        # forgotten: a task of it could send one "recovered" more.
        self._looked_at: dict[str, None] = {}
        self._errors = ErrorNews(self.routes, mine=mine, clock=clock)
        self._woken: asyncio.Event | None = None
        self._under_way = 0  # 1 while a record is considered
        self._shed = 0
        self.considered = 0  # records looked at so far (tests wait on it)

    @property
    def queues(self) -> Mapping[str, MessageQueue]:
        """Each receiver's messages waiting to be delivered."""
        return self.delivery.queues

    # -- on the event loop, O(1) -------------------------------------------------------------

    def on_run(self, record: RunRecord) -> None:
        """The dispatcher's run listener."""
        if record.status is RunStatus.RUNNING:
            self._start(record)
            return  # a start: nothing ended
        if record.status is RunStatus.SKIPPED and record.trigger is not Trigger.RETRY:
            return  # a slot skipped: nothing ended (an abandoned retry did)
        started = record.id in self._started
        if not isinstance(record, RetriedAttempt):  # a retried attempt's run goes on
            self._started.pop(record.id, None)
        if not (started or self.mine(record.task)):
            return  # a manual run asked here of a task another replica owns
        self._take(record)
        self._wake()

    def _start(self, record: RunRecord) -> None:
        if record.id in self._started:
            return  # a retry: the run is as its first attempt made it
        # A scheduled slot or a catch-up is run here because this replica owns the task, or did
        # until just now (claimed ahead of its slot, or fired before the pass that hands the
        # task over): the store's claim keeps the new owner from running it. A manual run may
        # be asked of any replica. A retry whose first attempt never started goes by the owner.
        decided = record.trigger in (Trigger.SCHEDULE, Trigger.CATCHUP)
        if not (decided or self.mine(record.task)):
            return
        if len(self._started) >= STARTED_MAX:  # its end, if it comes, goes by the owner
            del self._started[next(iter(self._started))]
        self._started[record.id] = None

    def crashed(self, records: Iterable[RunRecord]) -> None:
        """Runs a crash cut short, as the start-up (``instance.recover``) or the heartbeat
        found them: each counts as a run that ended, after the first pass (see the module
        docstring)."""
        if not self.crashes_told:
            return
        for record in records:
            if self._tasks is None:
                if len(self._crashed) < INTAKE_MAX:
                    self._crashed.append(_tail(record))
                else:
                    self._shed += 1  # said with the next intake
            else:
                self.on_run(record)

    def _take(self, record: RunRecord) -> None:
        if len(self._intake) >= INTAKE_MAX:
            self._intake.popleft()
            self._shed += 1
        self._intake.append(_tail(record))

    def after_pass(self, desired: DesiredState, left: Iterable[str] = ()) -> None:
        """A pass observer (successful passes): the definitions in force, new errors (found by
        the component: ``notify_errors``), and the tasks the pass took off this replica
        (removed, or handed over to another)."""
        self._tasks = desired.tasks  # replaced whole by each pass: keeping it is O(1)
        self.forget(left)
        crashed, self._crashed = self._crashed, []
        for record in crashed:
            self.on_run(record)
        self._errors.handed(desired)
        self._wake()

    def forget(self, keys: Iterable[str]) -> None:
        """What is known of ``keys`` here may be stale (they may have run elsewhere): their
        next run here is compared with their previous runs in the run store."""
        for key in keys:
            self._states.pop(key, None)

    # -- deciding ----------------------------------------------------------------------------

    async def _consider(self, record: RunRecord) -> None:
        if isinstance(record, RetriedAttempt):
            # The dispatcher tries the run again: it has not ended yet. Its own decision, not
            # one from the definition in force now, which may have changed since the run began.
            self._retrying[record.id] = record
            while len(self._retrying) > RETRYING_MAX:
                del self._retrying[next(iter(self._retrying))]
            return
        retried = self._retrying.pop(record.id, None)
        if record.status is RunStatus.SKIPPED or shut_down(record):
            if retried is None:
                return  # a slot skipped, or a run the shutdown cut short: nothing ended
            # A retry that will not happen (Replaced, TaskChanged, ...), or that the shutdown
            # abandoned or cut short: its run ended with the failed attempt before it, which is
            # what the message is about (the shutdown changes nothing of how the task does).
            record = retried
        if (
            record.job is not None
            and not self.mine(record.task)
            and await adopted(self.history, record)
        ):
            return  # its Job's end is told by the replica that follows the Job now
        definition = (self._tasks or {}).get(record.task)
        failure = record.status in FAILURES
        state = self._states.get(record.task)
        if state is None:
            state = await self._read_back(record)
        if died(record) and state.newest is not None and record.scheduled_at < state.newest:
            # A crash told late (taken over from a crontask that does not declare the task)
            # after a later run of the task was looked at here: that one says how it does. (A
            # crash found at start-up is looked at before the first runs end.)
            return
        state.newest = max(record.scheduled_at, state.newest or record.scheduled_at)
        now = self.clock()
        events: list[tuple[Event, bool]] = []  # (event, reminder)
        if failure:
            events.append((Event.EVERY_FAILURE, False))
            if not state.failing:
                # Since the run's end, as read back after a restart (``notify_history``).
                since = state.since or record.finished_at or now
                state.failing, state.since, state.last_sent = True, since, {}
                state.changes, state.owed, state.resent = state.changes + 1, set(), set()
                events.append((Event.FAILED, False))
            else:
                events.append((Event.FAILED, True))
        elif state.failing:
            state.changes, state.owed, state.resent = state.changes + 1, set(), set()
            events.append((Event.RECOVERED, False))
        elif state.recovery is not None:
            # Read back as recovered: its "recovered" may never have left the queue. Or it did
            # not reach the receivers ``owed`` (``notify_owed``).
            state.since = state.recovery
            events.append((Event.RECOVERED, True))
        for event, reminder in events:
            self._route(record, definition, event, reminder, state, now)
        # Told now, or about to be: from here on as if never restarted.
        state.unsure, state.recovery = False, None
        if not failure:  # after the message, which says since when it was failing
            state.failing, state.since, state.last_sent = False, None, {}
        if not self.mine(record.task):
            # The run ended here as the task left, or after (it was going at the handover):
            # what is known now would be stale when the task comes back, or another run of it
            # that was going here ends.
            self._states.pop(record.task, None)

    async def _read_back(self, record: RunRecord) -> TaskState:
        """The state of ``record``'s task from the run store (``remembered``), kept. A
        recovery read back is said again (its "recovered" may have been lost with the queue
        of a process that stopped) only the first time this process looks at the task: its
        start, or a task new to it. A task that comes back (it went to another replica, or
        may have run there) would otherwise send one with each return."""
        state = await remembered(
            self.history, record, limit=self._retry_limit, crashes_told=self.crashes_told
        )
        # A recovery can be told from a process that ran on after it only by the successes
        # kept after it: with fewer than two kept, every recovery would be told again at each
        # restart, however long ago it was.
        told_before = record.task in self._looked_at
        kept = self._successes_kept(record.task)
        if state.recovery is not None and (told_before or kept < 2):
            state.recovery, state.unsure = None, False
        if state.failing and kept == 0:
            # No success is ever kept: the failures read back may have been followed by any
            # number of successes, so every restart would send "recovered" again. Its next
            # failure is told as a new one instead.
            state.failing, state.unsure = False, False
        if record.task not in self._looked_at:
            self._looked_at[record.task] = None
            if len(self._looked_at) > LOOKED_AT_MAX:
                del self._looked_at[next(iter(self._looked_at))]
        self._states[record.task] = state
        return state

    def _successes_kept(self, key: str) -> int:
        """How many successful runs the run store keeps for ``key`` (not declared: the
        default's)."""
        definition = (self._tasks or {}).get(key)
        if definition is None:
            return int(TaskSpec.model_fields["successful_runs_history_limit"].default)
        return definition.task.spec.successful_runs_history_limit

    def _retry_limit(self, key: str) -> int:
        """The retry limit in force now for ``key`` (0 if it is not declared)."""
        definition = (self._tasks or {}).get(key)
        return definition.task.spec.retry.limit if definition else 0

    def _route(
        self,
        record: RunRecord,
        definition: Definition | None,
        event: Event,
        reminder: bool,
        state: TaskState,
        now: datetime,
    ) -> None:
        kind = definition.location.source if definition else None
        source = (definition.location.source, str(definition.location)) if definition else None
        sent_to: set[str] = set()
        changed = event in (Event.FAILED, Event.RECOVERED)
        told = notify_owed.Told(record.task, state, state.changes, state.since) if changed else None
        for index in self.routes.taking(event, record.task, kind):
            route = self.config.routes[index]
            if reminder and not state.unsure and route.receiver not in state.owed:
                if event is Event.RECOVERED:
                    continue  # a "recovered" owed to other receivers
                # Counted from the route's last message about it (or, if it had none, from
                # when the task began failing). An unsure state sends at once: the message
                # before the restart may never have left the queue; so does one that did not
                # reach this receiver (``owed``).
                last = state.last_sent.setdefault(index, state.since or now)
                interval = route.repeat_interval
                if interval is None or now - last < timedelta(seconds=interval):
                    continue
            if event is Event.FAILED:
                state.last_sent[index] = now
            if route.receiver in sent_to:
                continue
            sent_to.add(route.receiver)
            body = notify_payload.payload(
                event.value,
                key=record.task,
                source=source,
                record=record,
                reminder=reminder,
                failing_since=state.since,
                page_url=self.page_url,
                sent_at=now,
            )
            self.delivery.enqueue(Message(route.receiver, event.value, body, told))
        if changed:
            # Sent again, once: lost again, it is not owed again (``notify_owed``).
            state.resent |= state.owed & sent_to
            state.owed -= sent_to

    def _wake(self) -> None:
        if self._woken is not None:
            self._woken.set()

    # -- the component -----------------------------------------------------------------------

    async def run(self, ready: Callable[[], None], stop: asyncio.Event) -> None:
        # What ``crontask validate`` warns of (a receiver no route sends to), said at start too.
        for warning in self.notifications.warnings:
            place, _, said = warning.partition(": warning: ")
            log.warning(said, extra={"fields": {"location": place}})
        self._woken = asyncio.Event()
        if self._errors.waiting or self._intake:  # handed over before the component started
            self._woken.set()
        async with self.delivery.running(stop):
            ready()
            drain: asyncio.Task[None] | None = None
            try:
                while not stop.is_set():
                    await first_of(stop, self._woken)
                    self._woken.clear()
                    # Each record may read the store: a stop does not wait here for a drain
                    # under way, but below, with the deadline.
                    drain = asyncio.create_task(self._drain())
                    await first_of(stop, ended(drain))
            finally:
                # Before the senders are stopped: what the last runs make is still delivered,
                # and the crashed runs still waiting for a first pass (told without it: they
                # were marked once, and will not be found again).
                crashed, self._crashed = self._crashed, []
                for record in crashed:
                    self.on_run(record)
                try:
                    # A store that hangs must not hold the stop (and the components that stop
                    # after this one) for a read per task.
                    async with asyncio.timeout(SHUTDOWN_SECONDS):
                        if drain is not None:
                            await drain
                        await self._drain()
                except TimeoutError:
                    log.warning(
                        "notifications: stopped before every run that ended was looked at",
                        extra={"fields": {"skipped": len(self._intake) + self._under_way}},
                    )

    async def _drain(self) -> None:
        try:
            await self._errors.tell(self.delivery.enqueue)
        except Exception:
            log.exception("notifications: the definition errors of a pass could not be told")
        await self._drain_intake()

    async def _drain_intake(self) -> None:
        if self._shed:
            log.warning(
                "notifications: too many runs ended at once; some were not looked at",
                extra={"fields": {"skipped": self._shed}},
            )
            self._shed = 0
        while self._intake:
            record = self._intake.popleft()
            self._under_way = 1  # stays 1 if the stop's deadline cuts this one short
            try:
                await self._consider(record)
            except Exception:
                log.exception("notifications: a run could not be considered")
            self._under_way = 0
            self.considered += 1
            if self.considered % YIELD_EVERY == 0:
                # The record of a task already looked at reads no store: nothing else would
                # give the loop a turn (10 000 runs ending together held it for seconds).
                await asyncio.sleep(0)


def _tail(record: RunRecord) -> RunRecord:
    """``record`` with only what a message can say of its output: 10 000 waiting records are
    then 20 MB, not 640."""
    if len(record.output) <= notify_payload.OUTPUT_TAIL:
        return record
    return dataclasses.replace(record, output=record.output[-notify_payload.OUTPUT_TAIL :])
