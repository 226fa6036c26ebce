"""A receiver's queue of notifications (``notify_delivery``): first in, first out, bounded; when
full, it pushes out the message whose loss costs least.

That is the oldest ``everyFailure`` (the task's next failure sends another), else the oldest
other message that tells no change of a task's state (``definitionError``), and a ``failed``
or ``recovered`` only when it holds nothing else: they are sent once per change, and one
pushed out is sent again only with its task's next run (``notify``). Dropping the oldest
whatever it was let noisy tasks' ``everyFailure`` push out another task's only ``failed``. A
message is held in the deque of its rank, with its place in the order of arrival, so each
operation is O(1) (but iterating, in order, which merges the ranks). Each change of its length
is told to ``counted`` (the gauge ``crontask_notifications_queued``: a backlog that builds is
seen before the queue is full)."""

from __future__ import annotations

import collections
import dataclasses
import heapq
import itertools
from collections.abc import Callable, Iterator
from typing import Any, Final

# Ranks, the first pushed out first: what the task's next run sends again anyway, what tells
# no change of state, a change of state.
_RANKS: Final = {"everyFailure": 0, "failed": 2, "recovered": 2}
_OTHER: Final = 1


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """One event for one receiver, its body rendered (``notify_payload.payload``). ``about``:
    what the notifier is told back if the message is not delivered (``Delivery.unsent``),
    opaque to delivery."""

    receiver: str
    event: str
    body: dict[str, Any]
    about: object = None


class MessageQueue:
    """See the module docstring."""

    def __init__(self, counted: Callable[[int], None] = lambda length: None) -> None:
        self._counted = counted
        self._ranked: tuple[collections.deque[tuple[int, Message]], ...] = tuple(
            collections.deque() for _ in range(3)
        )
        self._count = 0
        self._next = itertools.count()  # places at the back
        self._front = 0  # the place of the last message put back in front (``appendleft``)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Message]:
        """The messages in the order they are delivered."""
        return (message for _, message in heapq.merge(*self._ranked, key=lambda m: m[0]))

    def append(self, message: Message, limit: int) -> Message | None:
        """Queue ``message``; if that makes more than ``limit``, the one pushed out (which may
        be ``message`` itself, if all the others rank above it)."""
        self._ranked[_RANKS.get(message.event, _OTHER)].append((next(self._next), message))
        self._count += 1
        if self._count <= limit:
            self._counted(self._count)
            return None
        ranked = next(ranked for ranked in self._ranked if ranked)
        self._count -= 1
        return ranked.popleft()[1]

    def appendleft(self, message: Message) -> None:
        """Put ``message`` back in front, to be delivered first."""
        self._front -= 1
        self._ranked[_RANKS.get(message.event, _OTHER)].appendleft((self._front, message))
        self._count += 1
        self._counted(self._count)

    def popleft(self) -> Message:
        """The message queued first (IndexError if there is none)."""
        heads = [ranked for ranked in self._ranked if ranked]
        if not heads:
            raise IndexError("pop from an empty queue")
        first = min(heads, key=lambda ranked: ranked[0][0])
        self._count -= 1
        self._counted(self._count)
        return first.popleft()[1]

    def clear(self) -> None:
        for ranked in self._ranked:
            ranked.clear()
        self._count = 0
        self._counted(0)
