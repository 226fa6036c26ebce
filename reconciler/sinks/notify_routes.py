"""Which receivers a notification goes to (a route's ``match``), and the one message per
receiver that new definition errors make (``notify``'s rules of what counts are there)."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from reconciler.core.desired import Conflict
from reconciler.core.problem_lines import Problem
from reconciler.sinks import notify_payload
from reconciler.sinks.notify_config import Event, Route
from reconciler.sinks.notify_delivery import Message

ERRORS_PER_MESSAGE: Final = 20
# A new definition error: its text, the task it names (or None), the source kinds it is in (a
# conflict is in each kind that declares its key) and where it is.
NewError = tuple[str, str | None, tuple[str, ...], str]


def place(problem: Problem) -> str:
    """Where a problem is: a broken definition's place, the definition in force of a key
    defined twice."""
    return str(problem.winner if isinstance(problem, Conflict) else problem.location)


def definition_error_messages(
    routes: Sequence[Route], new: Sequence[NewError], now: datetime
) -> list[Message]:
    """One message per receiver for the ``new`` errors that one of its ``routes`` matches,
    each listed once, in ``new``'s order; naming the task when all of them name that one.
    Linear in errors times routes: a pass may bring tens of thousands."""
    by_receiver: dict[str, list[Route]] = {}
    for route in routes:
        if Event.DEFINITION_ERROR in route.events:
            by_receiver.setdefault(route.receiver, []).append(route)
    messages = []
    for receiver, its_routes in by_receiver.items():
        told = [
            error
            for error in new
            if any(error_matches(r, error[1], kind) for r in its_routes for kind in error[2])
        ]
        if not told:
            continue
        texts = [text for text, *_ in told]
        _, key, kinds, where = told[0]
        one_task = key is not None and all(error[1] == key for error in told)
        body = notify_payload.payload(
            Event.DEFINITION_ERROR.value,
            key=key if one_task else None,
            source=(kinds[0], where) if one_task else None,
            record=None,
            errors=texts[:ERRORS_PER_MESSAGE],
            more_errors=max(0, len(texts) - ERRORS_PER_MESSAGE),
            sent_at=now,
        )
        messages.append(Message(receiver, Event.DEFINITION_ERROR.value, body))
    return messages


def error_matches(route: Route, key: str | None, kind: str) -> bool:
    """Whether ``route`` takes a definition error of task ``key`` (None: one that names no
    task, which only a route that asks for no namespace or name, and for its source, takes)."""
    if key is None:
        match = route.match
        return not (match.namespace or match.name) and match.source in (None, kind)
    return matches(route, key, kind)


def matches(route: Route, key: str, kind: str | None) -> bool:
    """Whether ``route`` takes a message about task ``key`` of source ``kind``."""
    namespace, _, name = key.partition("/")
    match = route.match
    if match.namespace is not None and namespace != match.namespace:
        return False
    if match.name is not None and not fnmatch.fnmatchcase(name, match.name):
        return False
    return match.source is None or kind == match.source
