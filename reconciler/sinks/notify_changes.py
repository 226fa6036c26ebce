"""A receiver's queue (``notify_delivery``) that never lets a flood of runs push out a change of
a task's state.

A ``failed`` or ``recovered`` of a task is sent once per change (``notify``): one pushed out of
a full queue was sent again only with the task's next run, an hour late for an hourly task.
10 000 tasks failing in the same minute made 10 000 of them, and 10 000 ``everyFailure``,
for a queue of 1 000: thousands of ``failed`` were lost to a receiver answering in 3 ms. So
the changes of state are kept apart, by task, and never pushed out by anything else: their
number is bounded by the tasks (at most one ``failed`` and one ``recovered`` waiting per task,
as a task's state only flips), which ``--max-tasks`` bounds. They are delivered first; the
other messages (``everyFailure``, ``definitionError``: what the next run or pass tells again)
wait in the bounded :class:`MessageQueue`, pushed out as before.

Of one task's waiting changes, the newest tells its state now: a ``failed`` then a
``recovered`` are both delivered, in that order (neither was); a third change pushes out the
oldest, now stale (a ``failed`` about failures since told recovered: the ``recovered`` says
since when it was failing), and goes to the back; a reminder of the state the newest already
tells (``repeatInterval``'s ``failed``) is pushed out itself. A change pushed out is
``dropped`` like any message (and told back: ``notify_owed`` ignores one about a state since
left). A ``failed`` or ``recovered`` that names no task (none does) is queued as before.

Changes go before the other messages, so a task's ``failed`` may go before the
``everyFailure`` of the same run, or of an earlier one; each message names its run."""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterator
from typing import Final

from reconciler.sinks.notify_queue import Message, MessageQueue

CHANGES: Final = frozenset({"failed", "recovered"})


class ReceiverQueue(MessageQueue):
    """See the module docstring. The :class:`MessageQueue` it extends holds the messages that
    are not changes of state; ``limit`` bounds those alone."""

    def __init__(self) -> None:
        super().__init__()
        # (task, event) -> (place, message), in the order they are delivered.
        self._changes: collections.OrderedDict[tuple[str, str], tuple[int, Message]] = (
            collections.OrderedDict()
        )
        self._order = itertools.count()
        self._first = 0  # the place of the last change put back in front

    def __len__(self) -> int:
        return len(self._changes) + super().__len__()

    def __iter__(self) -> Iterator[Message]:
        """The messages in the order they are delivered: the changes first."""
        yield from (message for _, message in self._changes.values())
        yield from super().__iter__()

    @property
    def changes(self) -> int:
        """How many changes of state wait."""
        return len(self._changes)

    def append(self, message: Message, limit: int) -> Message | None:
        """Queue ``message``; the one pushed out, if any (see the module docstring)."""
        task = _task(message)
        if task is None:
            return super().append(message, limit)
        key = (task, message.event)
        held = self._changes.get(key)
        if held is None:
            self._changes[key] = (next(self._order), message)
            return None
        other = self._changes.get((task, _other(message.event)))
        if other is None or other[0] < held[0]:
            return message  # a reminder of the state the one waiting tells
        # The one waiting is about a state the other kind, after it, says was left: stale.
        del self._changes[key]
        self._changes[key] = (next(self._order), message)
        return held[1]

    def appendleft(self, message: Message) -> None:
        """Put ``message`` back in front, to be delivered first."""
        task = _task(message)
        if task is None:
            super().appendleft(message)
            return
        key = (task, message.event)
        if key in self._changes:
            # Only as a delivery cut short by the stop is put back, when what is queued is
            # dropped at once: a newer one of its kind came meanwhile; both are counted.
            super().appendleft(message)
            return
        self._first -= 1
        self._changes[key] = (self._first, message)
        self._changes.move_to_end(key, last=False)

    def popleft(self) -> Message:
        """The change of state queued first, else the other message queued first."""
        if self._changes:
            return self._changes.popitem(last=False)[1][1]
        return super().popleft()

    def clear(self) -> None:
        self._changes.clear()
        super().clear()


def _task(message: Message) -> str | None:
    """The task a change of state is about (None: not a change, or about no task)."""
    if message.event not in CHANGES:
        return None
    task = message.body.get("task")
    key = task.get("key") if isinstance(task, dict) else None
    return key if isinstance(key, str) else None


def _other(event: str) -> str:
    return "recovered" if event == "failed" else "failed"
