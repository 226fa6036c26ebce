"""The task list's banner of definition errors: how many tasks keep running on their last good
definition, and how many errors are of definitions that do not run (never valid: a new task
that never ran; or a suspended task's).

The sources count every error and conflict and list the first 100 of each
(``SourceStatus.problems``); the tasks in state Error are those that run their last good
definition, each carrying an error (``TaskView.error``). An error is one of those tasks' when
a task carries it, or when it is in the same file or object as such a task: a file with
errors keeps all of its last good definitions, each carrying only the file's first error
(``sources.filestate``). The rest run nothing. Errors past those the sources list are not
told apart (the Sources page says where they are), except those a kept task carries: the task
says it is its own.

The parts are counts of errors and add up to the total (``of_kept + idle + untold``); how
many tasks are kept is said beside them. (Past the first 100 errors, a kept task's own error
was counted again among those not told apart: 250 errors read as 150 kept tasks, 40 idle and
150 untold.)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Final

from reconciler.controller.view import RuntimeView, SourceStatus, TaskQuery

KEPT_MAX: Final = 1000  # tasks in state Error read for the banner (the page counts no further)
_LINE_AND_COLUMN: Final = re.compile(r":\d+:\d+$")


@dataclasses.dataclass(frozen=True, slots=True)
class DefinitionErrors:
    total: int  # errors and conflicts, each once (``problem_count``)
    kept: int  # tasks that run their last good definition (at most KEPT_MAX)
    idle: int  # errors that no such task carries, nor its file: nothing of theirs runs
    untold: int  # errors past those the sources list that no kept task carries

    @property
    def of_kept(self) -> int:
        """The rest of ``total``: the errors of the kept tasks or of their files."""
        return self.total - self.idle - self.untold

    @property
    def kept_capped(self) -> bool:
        return self.kept >= KEPT_MAX


def problem_count(sources: Sequence[SourceStatus]) -> int:
    """The definition errors and conflicts of all sources, each once: a conflict between two
    kinds of source is located in both (``Service.sources``). Lines are told apart where each
    source lists them (its first 100); those past that are counted as they are."""
    listed = {problem for source in sources for problem in source.problems}
    return len(listed) + _untold(sources)


def definition_errors(runtime: RuntimeView, sources: Sequence[SourceStatus]) -> DefinitionErrors:
    listed = {problem for source in sources for problem in source.problems}
    untold = _untold(sources)
    if not listed and not untold:
        return DefinitionErrors(0, 0, 0, 0)  # no task to read: the usual case costs nothing
    kept = runtime.tasks(TaskQuery(state="Error", limit=KEPT_MAX))
    carried = {view.error for view in kept if view.error}
    places = {_LINE_AND_COLUMN.sub("", view.source.location) for view in kept}
    idle = sum(1 for line in listed if not _of_kept(line, carried, places))
    # An error a kept task carries that no source lists is one past the listed ones: told
    # apart after all (at most as many as there are past them, each counted once).
    past = min(untold, len(carried - listed))
    return DefinitionErrors(len(listed) + untold, len(kept), idle, untold - past)


def _untold(sources: Sequence[SourceStatus]) -> int:
    return sum(max(0, s.errors - len(s.problems)) for s in sources)


def _of_kept(line: str, carried: set[str], places: set[str]) -> bool:
    """Whether ``line`` (``place[:line:column]: message``) is an error of a kept task: one it
    carries, or one located in the same file or object as one of them."""
    if line in carried:
        return True
    # A place may hold a colon itself: every prefix up to a colon is a candidate.
    return any(line[:i] in places for i, c in enumerate(line) if c == ":")


__all__ = ["KEPT_MAX", "DefinitionErrors", "definition_errors", "problem_count"]
