"""Failure notifications: which runs and passes make a message, and its delivery.

The controller reports through two O(1) calls on the event loop, so a notification never
slows a run: :meth:`Notifier.on_run` (the dispatcher's run listener) and
:meth:`Notifier.after_pass` (a pass observer). Everything else happens in the notifier's own
component (:meth:`Notifier.run`): deciding what changed, routing, and delivering over HTTP,
one sender per receiver, each with a bounded queue, retries and backoff, so a receiver that is
down delays nothing but its own messages.

**What counts.** A run counts when it has ended for good: succeeded, or failed / timed out
with no retry left (``attempt > retry.limit``), or interrupted (not by crontask's own
shutdown). Skipped slots count for nothing. A task's state is ``failing`` after a run that
failed and ``ok`` after one that succeeded. Events:

- ``failed``: ok -> failing (a task failing every minute sends one message), and, with
  ``repeatInterval``, a reminder with the next failure once that long has passed since the
  route's last message about it;
- ``recovered``: failing -> ok;
- ``everyFailure``: every run that ends failing;
- ``definitionError``: definition errors and conflicts that were not there after the last
  pass (those present at start-up are reported once).

A task's state survives a restart: the first run of a task this process sees is compared with
the task's previous runs in the run store (``history``), failing since the first of the
failures they end with (runs cut short by the shutdown left out). With replicas, only a
task's owner (``mine``) notifies about it; a definition error that names no task is reported
by the owner of the empty key, one replica. A task that leaves this replica (``after_pass``'s
``left``), or that may have run on another one while this one was fenced (``forget``), is
forgotten here: its state goes on changing on its new owner, so if it comes back it is read
from the run store again, as after a restart.

**Delivery.** A message is POSTed as JSON (``notify_payload``); ``generic-hmac`` adds
``X-Signature: sha256=<hex HMAC-SHA256 of the body>``. Only the response's status is read,
never its body, and each attempt has :data:`TIMEOUT_SECONDS` in all (connecting, sending,
the status line and headers), so a receiver that answers slowly or endlessly holds neither
memory nor its sender. 2xx is ``sent``; a connection error, a timeout, 429 or 5xx is retried
(1 s, 2 s, 4 s, ... up to :data:`MAX_ATTEMPTS` attempts) and then ``failed``; another status,
or any other error, is ``failed`` at once; a message that finds its receiver's queue full
pushes out the oldest one (``dropped``). At shutdown the senders get :data:`SHUTDOWN_SECONDS`;
then a delivery still under way is cancelled and what is left is ``dropped``. Each outcome is
counted in ``crontask_notifications_total{receiver,result}`` and logged with the receiver's
name, never its URL or secret.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import fnmatch
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

import httpx

from reconciler.aio import in_thread
from reconciler.core.desired import Definition, DesiredState
from reconciler.core.runs import RunRecord, RunStatus
from reconciler.sinks import notify_payload
from reconciler.sinks.notify_config import Event, Notifications, Receiver, Route

log = logging.getLogger("crontask.notify")

RESULTS: Final = ("sent", "failed", "dropped")
FAILURES: Final = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.INTERRUPTED})
INTAKE_MAX: Final = 10_000  # records waiting to be looked at
QUEUE_MAX: Final = 1_000  # messages waiting per receiver
MAX_ATTEMPTS: Final = 5
TIMEOUT_SECONDS: Final = 10.0  # one attempt, in all
ERRORS_PER_MESSAGE: Final = 20
SHUTDOWN_SECONDS: Final = 5.0  # what stopping gives the messages still queued
SHUTDOWN_REASON: Final = "Shutdown"

History = Callable[[str], Sequence[RunRecord]]  # a task's runs, newest first
Clock = Callable[[], datetime]


@dataclasses.dataclass
class _TaskState:
    failing: bool
    since: datetime | None  # when it started failing
    last_sent: dict[int, datetime] = dataclasses.field(default_factory=dict)  # by route


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    receiver: str
    event: str
    body: dict[str, Any]


class Counter(Protocol):
    """Where outcomes are counted (``Metrics`` has these two methods)."""

    def notification_receivers(self, names: Iterable[str], results: Iterable[str]) -> None: ...

    def notified(self, receiver: str, result: str) -> None: ...


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
    ) -> None:
        self.notifications = notifications
        self.config = notifications.config
        self.metrics = metrics
        self.mine = mine
        self.history = history
        self.page_url = page_url
        self.clock = clock
        self.backoff = backoff
        self.timeout = timeout
        self.transport = transport
        self.receivers: dict[str, Receiver] = {r.name: r for r in self.config.receivers}
        self.queues: dict[str, collections.deque[Message]] = {
            name: collections.deque() for name in self.receivers
        }
        self._intake: collections.deque[RunRecord] = collections.deque()
        self._tasks: Mapping[str, Definition] = {}
        self._states: dict[str, _TaskState] = {}
        self._reported: set[str] = set()
        self._woken: asyncio.Event | None = None
        self._queued: dict[str, asyncio.Event] = {}
        self._shed = 0
        self.considered = 0  # records looked at so far (tests wait on it)
        metrics.notification_receivers(self.receivers, RESULTS)

    # -- on the event loop, O(1) -------------------------------------------------------------

    def on_run(self, record: RunRecord) -> None:
        """The dispatcher's run listener."""
        if record.status is RunStatus.RUNNING or record.status is RunStatus.SKIPPED:
            return
        if not self.mine(record.task):
            return
        if len(self._intake) >= INTAKE_MAX:
            self._intake.popleft()
            self._shed += 1
        self._intake.append(record)
        self._wake()

    def after_pass(self, desired: DesiredState, left: Iterable[str] = ()) -> None:
        """A pass observer (successful passes): the definitions in force, new errors, and the
        tasks the pass took off this replica (removed, or handed over to another)."""
        self._tasks = desired.tasks  # replaced whole by each pass: keeping it is O(1)
        self.forget(left)
        current = {str(e): (e.key, e.location.source) for e in desired.errors}
        current.update({str(c): (c.key, c.winner.source) for c in desired.conflicts})
        new = [
            (text, key, kind) for text, (key, kind) in current.items() if text not in self._reported
        ]
        self._reported = set(current)
        if new:
            self._definition_errors(sorted(new))

    def forget(self, keys: Iterable[str]) -> None:
        """What is known of ``keys`` here may be stale (they may have run elsewhere): their
        next run here is compared with their previous runs in the run store."""
        for key in keys:
            self._states.pop(key, None)

    # -- deciding ----------------------------------------------------------------------------

    async def _consider(self, record: RunRecord) -> None:
        if _shut_down(record):
            return
        failure = record.status in FAILURES
        definition = self._tasks.get(record.task)
        if _retried(record, definition):
            return  # a retry follows: the run has not ended yet
        state = self._states.get(record.task)
        if state is None:
            state = await self._remembered(record)
            self._states[record.task] = state
        now = self.clock()
        events: list[tuple[Event, bool]] = []  # (event, reminder)
        if failure:
            events.append((Event.EVERY_FAILURE, False))
            if not state.failing:
                state.failing, state.since, state.last_sent = True, now, {}
                events.append((Event.FAILED, False))
            else:
                events.append((Event.FAILED, True))
        elif state.failing:
            events.append((Event.RECOVERED, False))
        for event, reminder in events:
            self._route(record, definition, event, reminder, state, now)
        if not failure:  # after the message, which says since when it was failing
            state.failing, state.since, state.last_sent = False, None, {}
        if not self.mine(record.task):
            # The run ended here before the task left (its record waited in the intake): what
            # is known now would be stale when the task comes back.
            self._states.pop(record.task, None)

    async def _remembered(self, record: RunRecord) -> _TaskState:
        """The task's state before ``record``, from its previous runs in the store: failing
        since the first of the failures that end the history read (as far as that goes)."""
        if self.history is None:
            return _TaskState(False, None)
        try:
            runs = await in_thread(self.history, record.task)
        except Exception as err:
            log.warning(
                "notifications: cannot read the task's previous run; taking it as ok",
                extra={"fields": {"task": record.task, "error": str(err)[:200]}},
            )
            return _TaskState(False, None)
        since: datetime | None = None
        failing = False
        for previous in runs:
            if (
                previous.id == record.id
                or previous.status in (RunStatus.RUNNING, RunStatus.SKIPPED)
                or _shut_down(previous)  # counts for nothing, as in _consider
            ):
                continue
            if previous.status not in FAILURES:
                break
            failing, since = True, previous.finished_at or since
        return _TaskState(failing, since)

    def _route(
        self,
        record: RunRecord,
        definition: Definition | None,
        event: Event,
        reminder: bool,
        state: _TaskState,
        now: datetime,
    ) -> None:
        kind = definition.location.source if definition else None
        source = (definition.location.source, str(definition.location)) if definition else None
        sent_to: set[str] = set()
        for index, route in enumerate(self.config.routes):
            if event not in route.events or not _matches(route, record.task, kind):
                continue
            if reminder:
                # Counted from the first message; after a restart, from when it began failing
                # (or from now, if that is not known).
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
            self._enqueue(Message(route.receiver, event.value, body))

    def _definition_errors(self, new: list[tuple[str, str | None, str]]) -> None:
        now = self.clock()
        by_receiver: dict[str, list[str]] = {}
        for route in self.config.routes:
            if Event.DEFINITION_ERROR not in route.events:
                continue
            for text, key, kind in new:
                if not self.mine(key or ""):
                    continue
                if key is None and (route.match.namespace or route.match.name):
                    continue
                if key is not None and not _matches(route, key, kind):
                    continue
                found = by_receiver.setdefault(route.receiver, [])
                if text not in found:
                    found.append(text)
        for receiver, texts in by_receiver.items():
            body = notify_payload.payload(
                Event.DEFINITION_ERROR.value,
                key=None,
                source=None,
                record=None,
                errors=texts[:ERRORS_PER_MESSAGE],
                more_errors=max(0, len(texts) - ERRORS_PER_MESSAGE),
                sent_at=now,
            )
            self._enqueue(Message(receiver, Event.DEFINITION_ERROR.value, body))

    def _enqueue(self, message: Message) -> None:
        queue = self.queues[message.receiver]
        if len(queue) >= QUEUE_MAX:
            dropped = queue.popleft()
            self.metrics.notified(dropped.receiver, "dropped")
            log.warning(
                "notification dropped: the receiver's queue is full",
                extra={"fields": {"receiver": dropped.receiver, "event": dropped.event}},
            )
        queue.append(message)
        event = self._queued.get(message.receiver)
        if event is not None:
            event.set()

    def _wake(self) -> None:
        if self._woken is not None:
            self._woken.set()

    # -- the component -----------------------------------------------------------------------

    async def run(self, ready: Callable[[], None], stop: asyncio.Event) -> None:
        # httpx logs each request's URL at INFO, and a webhook's URL is often its secret.
        logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.root.level))
        self._woken = asyncio.Event()
        self._queued = {name: asyncio.Event() for name in self.receivers}
        async with httpx.AsyncClient(
            timeout=self.timeout, follow_redirects=False, transport=self.transport
        ) as client:
            senders = [
                asyncio.create_task(self._sender(client, self.receivers[name], stop))
                for name in self.receivers
            ]
            ready()
            try:
                while not stop.is_set():
                    await _first(stop, self._woken)
                    self._woken.clear()
                    await self._drain_intake()
            finally:
                await self._drain_intake()
                for event in self._queued.values():
                    event.set()
                # A sender stops by itself once its queue is empty or SHUTDOWN_SECONDS have
                # passed, but only between deliveries: one under way is cancelled here.
                _, late = await asyncio.wait(senders, timeout=SHUTDOWN_SECONDS)
                for sender in late:
                    sender.cancel()
                await asyncio.gather(*senders, return_exceptions=True)

    async def _drain_intake(self) -> None:
        if self._shed:
            log.warning(
                "notifications: too many runs ended at once; some were not looked at",
                extra={"fields": {"skipped": self._shed}},
            )
            self._shed = 0
        while self._intake:
            record = self._intake.popleft()
            try:
                await self._consider(record)
            except Exception:
                log.exception("notifications: a run could not be considered")
            self.considered += 1

    async def _sender(
        self, client: httpx.AsyncClient, receiver: Receiver, stop: asyncio.Event
    ) -> None:
        queue = self.queues[receiver.name]
        queued = self._queued[receiver.name]
        deadline: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            if not queue:
                if stop.is_set():
                    return
                queued.clear()
                await _first(stop, queued)
                continue
            if stop.is_set() and deadline is None:
                deadline = loop.time() + SHUTDOWN_SECONDS
            if deadline is not None and loop.time() > deadline:
                self._drop_at_shutdown(receiver, queue)
                return
            message = queue.popleft()
            try:
                result = await self._deliver(client, receiver, message, stop)
            except asyncio.CancelledError:
                queue.appendleft(message)
                self._drop_at_shutdown(receiver, queue)
                raise
            except Exception as err:  # a bug must not end the sender: the queue would grow
                log.error(
                    "notification failed",
                    extra={"fields": {"receiver": receiver.name, "error": type(err).__name__}},
                )
                result = "failed"
            self.metrics.notified(receiver.name, result)

    def _drop_at_shutdown(self, receiver: Receiver, queue: collections.deque[Message]) -> None:
        for message in queue:
            self.metrics.notified(message.receiver, "dropped")
        log.warning(
            "notifications not delivered before shutdown",
            extra={"fields": {"receiver": receiver.name, "messages": len(queue)}},
        )
        queue.clear()

    async def _deliver(
        self,
        client: httpx.AsyncClient,
        receiver: Receiver,
        message: Message,
        stop: asyncio.Event,
    ) -> str:
        fields: dict[str, object] = {"receiver": receiver.name, "event": message.event}
        task = message.body.get("task")
        if task:
            fields["task"] = task["key"]
        body_data = notify_payload.slack(message.body) if receiver.type == "slack" else message.body
        body = notify_payload.body_of(body_data)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                url = self.notifications.url_of(receiver)
                headers = {"Content-Type": "application/json", "User-Agent": "crontask"}
                if receiver.type == "generic-hmac":
                    secret = self.notifications.secret_of(receiver)
                    headers[notify_payload.SIGNATURE_HEADER] = notify_payload.signature(
                        secret, body
                    )
            except ValueError as err:
                log.error("notification failed", extra={"fields": {**fields, "error": str(err)}})
                return "failed"
            try:
                status, outcome = await self._post(client, url, body, headers), None
            except (httpx.HTTPError, TimeoutError) as err:
                outcome, status = type(err).__name__, None
            except Exception as err:
                # Not a failure of the receiver but of the request (a URL httpx cannot use):
                # trying again cannot help. Only the type is logged: the text may quote the URL.
                log.error(
                    "notification failed",
                    extra={"fields": {**fields, "attempt": attempt, "error": type(err).__name__}},
                )
                return "failed"
            if status is not None and 200 <= status < 300:
                log.debug("notification sent", extra={"fields": {**fields, "status": status}})
                return "sent"
            retryable = status is None or status == 429 or status >= 500
            said = {**fields, "attempt": attempt, "status": status, "error": outcome}
            if not retryable or attempt == MAX_ATTEMPTS or stop.is_set():
                log.warning("notification failed", extra={"fields": said})
                return "failed"
            log.info("notification not delivered; retrying", extra={"fields": said})
            await _first(stop, timeout=self.backoff * 2 ** (attempt - 1))
        return "failed"

    async def _post(
        self, client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]
    ) -> int:
        """The response's status. httpx's timeout is per read, so a receiver sending a byte
        now and then would hold the attempt for ever: the deadline is for all of it. The
        body is not read, so an endless one costs nothing (the connection is closed)."""
        async with asyncio.timeout(self.timeout):
            async with client.stream("POST", url, content=body, headers=headers) as response:
                return response.status_code


def _shut_down(record: RunRecord) -> bool:
    """Whether ``record``'s run was interrupted by crontask's own shutdown (counts for
    nothing: it says nothing about the task)."""
    return record.status is RunStatus.INTERRUPTED and record.reason == SHUTDOWN_REASON


def _retried(record: RunRecord, definition: Definition | None) -> bool:
    """Whether the dispatcher tries ``record``'s run again (as ``Dispatcher`` decides it: a
    failed or timed-out attempt within the retry limit, unless another run replaced it)."""
    return (
        definition is not None
        and record.status in (RunStatus.FAILED, RunStatus.TIMED_OUT)
        and record.attempt <= definition.task.spec.retry.limit
        and record.reason != "Replaced"
    )


def _matches(route: Route, key: str, kind: str | None) -> bool:
    namespace, _, name = key.partition("/")
    match = route.match
    if match.namespace is not None and namespace != match.namespace:
        return False
    if match.name is not None and not fnmatch.fnmatchcase(name, match.name):
        return False
    return match.source is None or kind == match.source


async def _first(*events: asyncio.Event, timeout: float | None = None) -> None:
    """Until one of ``events`` is set, or ``timeout`` seconds."""
    waiting = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in waiting:
            future.cancel()
