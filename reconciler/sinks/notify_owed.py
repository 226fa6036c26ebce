"""A ``failed`` or ``recovered`` that did not reach its receiver: told back by delivery
(``notify_delivery``: given up after its attempts, or pushed out of a full queue), and owed.

They are sent only when a task's state changes (``notify``), so one lost was lost for good:
a receiver down for the few seconds of a message's attempts at a task's first failure heard
nothing of the task while it kept failing. Now, if the task is still in the state the message
told of, that receiver is owed it (``TaskState.owed``), and the task's next run of the same
outcome sends it again as a reminder (``notify.Notifier._route``): a next failure its
``failed``, a next success its ``recovered``. Once: a copy sent again that is lost too is
not owed again (``TaskState.resent``), as the receiver may have taken each in and answered
5xx or too late, and would get one with every run. Only to the receivers it did not reach, and
never one about a state since left: a ``recovered`` of a task failing again, a ``failed`` of
a task that recovered (its ``recovered`` says since when it was failing). A task's state read
back from the run store meanwhile (it left this replica and came back) is unsure anyway."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime

from reconciler.sinks.notify_config import Event
from reconciler.sinks.notify_history import TaskState
from reconciler.sinks.notify_queue import Message


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Told:
    """What a "failed" or "recovered" message tells of (its ``about``): ``key``'s ``state``,
    as it was after its ``changes``-th change; ``since``: when the failures began."""

    key: str
    state: TaskState
    changes: int
    since: datetime | None


def unsent(states: Mapping[str, TaskState], message: Message) -> None:
    """``message`` did not reach its receiver: owed to it, if ``states`` (the notifier's)
    still holds the state it told of."""
    told = message.about
    if not isinstance(told, Told):
        return  # not about a change of state: the next message says as much
    state = told.state
    if states.get(told.key) is not state or state.changes != told.changes:
        return  # changed since, or forgotten (read back from the store: unsure)
    if message.receiver in state.resent:
        return  # sent again once already: the next reminder is repeatInterval's
    state.owed.add(message.receiver)
    if message.event == Event.RECOVERED.value:
        state.recovery = told.since  # sent again as a recovery from the failures since then
