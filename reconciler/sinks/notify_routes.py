"""Which receivers a notification goes to (a route's ``match``), and the one message per
receiver that new definition errors make (``notify``'s rules of what counts are there).

A pass may bring tens of thousands of new errors (a committer can leave 100 000), and a
configuration may hold hundreds of routes: asking each route of each error (a glob each time)
held the event loop for seconds. :class:`Routes` compiles the routes once: those of an event
that ask for the same namespace and source make a group whose name globs are one regular
expression, so a task is matched against each group once, and against the group's routes one
by one only when the group takes it (most errors are taken by few routes, or none). The
notifier routes a pass's errors a chunk at a time (:func:`route_errors`), yielding to the loop
between chunks, then makes the messages (:func:`error_messages`). :func:`matches` and
:func:`error_matches` are the rule, one route at a time; :class:`Routes` gives the same answers.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
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
# A compiled glob's ``match``: not None when it takes the name.
_Names = Callable[[str], object]


def place(problem: Problem) -> str:
    """Where a problem is: a broken definition's place, the definition in force of a key
    defined twice."""
    return str(problem.winner if isinstance(problem, Conflict) else problem.location)


@dataclasses.dataclass(frozen=True)
class _Group:
    """The routes of one event that ask for the same namespace and source."""

    source: str | None
    every: tuple[int, ...]  # the indexes of those that ask for no name
    names: _Names | None  # the union of the others' globs (None: there are none)
    globbed: tuple[tuple[int, _Names], ...]  # the others: each one's index and glob


class Routes:
    """``routes`` compiled (see the module docstring)."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)
        grouped: dict[tuple[Event, str | None, str | None], list[int]] = {}
        for index, route in enumerate(self.routes):
            for event in route.events:
                grouped.setdefault((event, route.match.namespace, route.match.source), []).append(
                    index
                )
        # By event, then by the namespace asked for (None: any).
        self._groups: dict[Event, dict[str | None, list[_Group]]] = {}
        for (event, namespace, source), indexes in grouped.items():
            group = self._group(source, indexes)
            self._groups.setdefault(event, {}).setdefault(namespace, []).append(group)
        # The receivers of definition errors, in the order of their first such route: the
        # order of their messages.
        self.error_receivers = tuple(
            dict.fromkeys(r.receiver for r in self.routes if Event.DEFINITION_ERROR in r.events)
        )

    def _group(self, source: str | None, indexes: list[int]) -> _Group:
        every = tuple(index for index in indexes if self.routes[index].match.name is None)
        globs = {
            index: glob for index in indexes if (glob := self.routes[index].match.name) is not None
        }
        if not globs:
            return _Group(source, every, None, ())
        # Each translated glob ends with its own \Z: the alternatives need no grouping.
        union = "|".join(fnmatch.translate(glob) for glob in dict.fromkeys(globs.values()))
        globbed = tuple((index, _compiled(glob)) for index, glob in globs.items())
        return _Group(source, every, re.compile(union).match, globbed)

    def taking(self, event: Event, key: str, kind: str | None) -> list[int]:
        """The indexes of the routes of ``event`` that take a message about task ``key`` of
        source ``kind`` (None: a task not declared), in order: those :func:`matches` takes."""
        by_namespace = self._groups.get(event)
        if not by_namespace:
            return []
        namespace, _, name = key.partition("/")
        found: list[int] = []
        for groups in (by_namespace.get(None, ()), by_namespace.get(namespace, ())):
            for group in groups:
                if group.source is not None and group.source != kind:
                    continue
                found.extend(group.every)
                if group.names is not None and group.names(name) is not None:
                    found.extend(i for i, names in group.globbed if names(name) is not None)
        return sorted(found)

    def taking_error(self, key: str | None, kind: str) -> list[int]:
        """The indexes of the ``definitionError`` routes that take an error of task ``key``
        found in source ``kind``, in order: those :func:`error_matches` takes."""
        if key is not None:
            return self.taking(Event.DEFINITION_ERROR, key, kind)
        # One that names no task: the routes that ask for no namespace or name.
        groups = self._groups.get(Event.DEFINITION_ERROR, {}).get(None, ())
        return sorted(
            index for group in groups if group.source in (None, kind) for index in group.every
        )


def _compiled(glob: str) -> _Names:
    return re.compile(fnmatch.translate(glob)).match


def route_errors(routes: Routes, new: Iterable[NewError], told: dict[str, list[NewError]]) -> None:
    """Add each of ``new`` to ``told[receiver]`` for each receiver one of whose routes takes
    it, once, in ``new``'s order (the notifier calls it a chunk at a time)."""
    for error in new:
        _, key, kinds, _ = error
        taken = {index for kind in kinds for index in routes.taking_error(key, kind)}
        for receiver in dict.fromkeys(routes.routes[index].receiver for index in sorted(taken)):
            told.setdefault(receiver, []).append(error)


def error_messages(
    routes: Routes, told: Mapping[str, Sequence[NewError]], now: datetime
) -> list[Message]:
    """One message per receiver of ``told`` (:func:`route_errors`), each error listed once;
    naming the task when all of them name that one."""
    messages = []
    for receiver in routes.error_receivers:
        errors = told.get(receiver)
        if not errors:
            continue
        texts = [text for text, *_ in errors]
        _, key, kinds, where = errors[0]
        one_task = key is not None and all(error[1] == key for error in errors)
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
