"""Which problem lines a pass made appear or go, in proportion to what the pass changed.

A committer can leave 100 000 definition errors (5 000 broken files of 20 documents); every
later pass, an edit of one good file among them, must not format and compare them all again
(0.2 s a consumer, each pass). A pass keeps the error and conflict objects it did not touch
(``desired.reassemble`` hands them on), so what changed is found by identity, and only the
changed objects are formatted. Lines are counted, not merely collected: the same line can
come from two objects (a file read again says what it said before), and it is shown until the
last of them goes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import TypeVar

from reconciler.core.desired import Conflict, DefinitionError, DesiredState

Problem = DefinitionError | Conflict

_T = TypeVar("_T")
_NUMBERS = re.compile(r"([0-9]+)")


class ProblemLines:
    """The problem lines (``DesiredState.problems``) of the last state given to ``update``."""

    def __init__(self) -> None:
        self._state = DesiredState(tasks={})
        self._count: Counter[str] = Counter()

    def update(self, desired: DesiredState) -> tuple[list[tuple[str, Problem]], list[str]]:
        """The lines ``desired`` shows that the last state did not (each with one problem
        that says it), and those it no longer shows; each list sorted by line."""
        before = self._state
        self._state = desired
        gone: list[Problem] = [
            *_missing(before.errors, desired.errors),
            *_missing(before.conflicts, desired.conflicts),
        ]
        new: list[Problem] = [
            *_missing(desired.errors, before.errors),
            *_missing(desired.conflicts, before.conflicts),
        ]
        shown_before: dict[str, bool] = {}
        said_by: dict[str, Problem] = {}
        for problem, step in [(p, -1) for p in gone] + [(p, 1) for p in new]:
            line = str(problem)
            shown_before.setdefault(line, self._count[line] > 0)
            self._count[line] += step
            if step > 0:
                said_by[line] = problem
        appeared: list[tuple[str, Problem]] = []
        resolved: list[str] = []
        for line, was in shown_before.items():
            now = self._count[line] > 0
            if not now:
                del self._count[line]
            if now and not was:
                appeared.append((line, said_by[line]))
            elif was and not now:
                resolved.append(line)
        appeared.sort(key=lambda item: _in_order(item[0]))
        resolved.sort(key=_in_order)
        return appeared, resolved


def _in_order(line: str) -> list[str | tuple[int, str]]:
    """``line``'s sort key, its numbers read as numbers: ``bad.yaml:15`` before ``bad.yaml:105``,
    as the lines of a file follow each other. Text and numbers alternate, text first, in every
    key (``re.split`` with a group), so two keys compare item by item; a number is compared by
    its length, then its digits (no ``int``: a message may quote thousands of them)."""
    parts: list[str | tuple[int, str]] = []
    for i, part in enumerate(_NUMBERS.split(line)):
        digits = part.lstrip("0")
        parts.append((len(digits), digits) if i % 2 else part)
    return parts


def identity(problem: Problem) -> tuple[object, ...]:
    """What a problem is about, without where in its text it is: an error's source, file (or
    resource), task and message (its ``about`` instead, when it has one: a message whose
    number moves, a size over --max-file-size); a conflict's key and the places that declare
    it. An edit above it that moves its line, a new git revision of a file still broken the
    same way, or a file that grows while over the limit, gives another line (``str``) but the
    same problem."""
    if isinstance(problem, Conflict):
        losers = tuple(sorted((lost.source, lost.path) for lost in problem.losers))
        return ("conflict", problem.key, problem.winner.source, problem.winner.path, losers)
    where = problem.location
    said = problem.message if problem.about is None else problem.about
    return ("error", where.source, where.path, problem.key, said)


class Told:
    """The problems a consumer has told of (notifications), by :func:`identity`: of the lines
    a pass made appear, those that are news, and not a problem told already whose line moved
    (the line that went is in the same pass's ``resolved``). Counted, not merely compared: two
    errors can be about the same problem (two nameless documents in one file, broken the same
    way), and a second one appearing is news, as one of them going is a fix."""

    def __init__(self) -> None:
        self._of: dict[str, tuple[object, ...]] = {}  # each line shown, and what it is about

    def news(
        self, appeared: Sequence[tuple[str, Problem]], resolved: Sequence[str]
    ) -> list[tuple[str, Problem]]:
        """The lines of ``appeared`` that are news, in ``appeared``'s order; ``resolved``: the
        lines the pass took away."""
        return self.changes(appeared, resolved)[0]

    def changes(
        self, appeared: Sequence[tuple[str, Problem]], resolved: Sequence[str]
    ) -> tuple[list[tuple[str, Problem]], list[str]]:
        """``news``, and the lines of ``resolved`` that are fixes, in ``resolved``'s order. For
        each problem, what the pass changed in all: N lines more are N news, N fewer are N
        fixes, and a line that moved (one went, one came) is neither."""
        net: Counter[tuple[object, ...]] = Counter()
        gone = [self._of.pop(line, None) for line in resolved]
        for about in gone:
            if about is not None:
                net[about] -= 1
        abouts = [identity(problem) for _, problem in appeared]
        for (line, _), about in zip(appeared, abouts, strict=True):
            self._of[line] = about
            net[about] += 1
        news = []
        for item, about in zip(appeared, abouts, strict=True):
            if net[about] > 0:
                news.append(item)
                net[about] -= 1
        fixed = []
        for line, about in zip(resolved, gone, strict=True):
            if about is None:  # never told (a consumer that skipped passes): nothing says it now
                fixed.append(line)
            elif net[about] < 0:
                fixed.append(line)
                net[about] += 1
        return news, fixed


def _missing(items: Sequence[_T], other: Sequence[_T]) -> list[_T]:
    """The objects of ``items`` that are not in ``other``, by identity: O(len) and no
    formatting, since a pass hands on the objects it did not touch."""
    if items is other:
        return []
    there = set(map(id, other))
    return [item for item in items if id(item) not in there]


def subject(problem: Problem) -> tuple[str | None, tuple[str, ...]]:
    """The task key a problem names (None: a broken text that names none) and the kinds of
    source (``SourceKind``) it is found in, each once: a conflict is in every kind that
    declares its key (DESIGN: "reported on both"), the winner's first."""
    if isinstance(problem, Conflict):
        losers = (lost.source for lost in problem.losers)
        return problem.key, tuple(dict.fromkeys([problem.winner.source, *losers]))
    return problem.key, (problem.location.source,)
