"""Desired state: what the sources declare, after conflicts are settled.

A source hands over its definitions (the last good one per task, flagged when the current text
is broken) and its errors; ``assemble`` turns them into one mapping from task key to definition
(``reassemble`` does the same for a change to a few keys, without walking the others;
``check`` reports the same problems of definitions read in other processes).
A key declared in two places is a conflict: the definition whose location sorts first wins, the
same way on every pass and every restart, and the conflict is reported on both.
"""

from __future__ import annotations

import bisect
import dataclasses
import enum
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Protocol, TypeVar

from reconciler.core.model import CronTask
from reconciler.core.schedule.cronjob import cronjob_difference


class SourceKind(enum.StrEnum):
    """The kinds of place a definition comes from (``Location.source``)."""

    FILE = "file"  # a folder given as PATH
    GIT = "git"  # a git repository (--git)
    KUBERNETES = "kubernetes"  # a CronTask custom resource
    API = "api"  # created through the REST API


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class Location:
    """Where a definition lives. ``line``/``column`` are 1-based, as editors show them."""

    source: str  # a SourceKind
    path: str  # a file path, "namespace/name" of a custom resource, ...
    line: int = 0  # 0: unknown
    column: int = 0
    revision: str | None = dataclasses.field(default=None, compare=False)

    def __str__(self) -> str:
        if self.line:
            return f"{self.path}:{self.line}:{self.column or 1}"
        return self.path


@dataclasses.dataclass(frozen=True, slots=True)
class Definition:
    """A valid CronTask and where it came from.

    ``error`` is set when this is a last-good definition kept in force because the text at its
    location no longer parses or validates.
    """

    task: CronTask
    location: Location
    hash: str
    error: str | None = None
    # Stored, not derived on each access: every pass and every fire looks it up.
    key: str = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", self.task.key)

    @classmethod
    def of(cls, task: CronTask, location: Location) -> Definition:
        return cls(task=task, location=location, hash=task.spec_hash())


class ErrorKind(enum.StrEnum):
    """Why a definition could not be used (``DefinitionError.kind``): said as data, not read
    back from the message, whose words (a spec's own values among them) are anyone's."""

    INVALID = "invalid"  # its text does not make a valid task: the fix is in the text
    TASK_LIMIT = "task-limit"  # its source is past its bound (--max-tasks): the text may be fine
    HOLD = "hold"  # a root that yields no task file now: its tasks are kept (--allow-empty)


@dataclasses.dataclass(frozen=True, slots=True)
class DefinitionError:
    """A definition that could not be used, with the place to fix it."""

    location: Location
    message: str
    key: str | None = None  # when the broken text still names its task
    kind: ErrorKind = ErrorKind.INVALID
    # What the error is about when its message holds a number that a change can move while
    # the file stays broken the same way (its size, the tasks its source would hold): what
    # ``problem_lines.identity`` compares in place of the message, so that a growing file
    # over --max-file-size is not told again, and "resolved", at each change.
    about: str | None = None

    def __str__(self) -> str:
        # The revision goes last, so that the line still starts with file:line:col.
        revision = self.location.revision
        suffix = f" (revision {revision[:12]})" if revision else ""
        return f"{self.location}: {self.message}{suffix}"


def schedule_warning(definition: Definition) -> str | None:
    """The warning line ``crontask validate`` prints for a valid task whose schedule runs on
    other days under a Kubernetes CronJob (:mod:`reconciler.core.schedule.cronjob`), or None."""
    schedule = definition.task.spec.schedule
    if (why := cronjob_difference(schedule)) is None:
        return None
    return f"{definition.location}: warning: {definition.key}: schedule {schedule!r}: {why}"


@dataclasses.dataclass(frozen=True, slots=True)
class Conflict:
    key: str
    winner: Location
    losers: tuple[Location, ...]

    def __str__(self) -> str:
        # One line, however many places: a file of 9 000 copies of one task is 1 MiB.
        others = ", ".join(str(loc) for loc in self.losers[:_LOSERS_SHOWN])
        if len(self.losers) > _LOSERS_SHOWN:
            others += f" and {len(self.losers) - _LOSERS_SHOWN} more"
        return f"{self.key} is defined more than once: using {self.winner}, ignoring {others}"


_LOSERS_SHOWN = 5


@dataclasses.dataclass(frozen=True, slots=True)
class DesiredState:
    tasks: Mapping[str, Definition]
    errors: tuple[DefinitionError, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    # ``errors`` as the sources gave them, unsorted: the next pass compares what it is given
    # with it (the same objects in the same order, compared in C) before anything else.
    given: tuple[DefinitionError, ...] = dataclasses.field(default=(), compare=False, repr=False)

    @property
    def problems(self) -> list[str]:
        """Every error and conflict as one line, in a stable order."""
        return [str(e) for e in self.errors] + [str(c) for c in self.conflicts]


@dataclasses.dataclass(frozen=True, slots=True)
class Placed:
    """Where a task key is defined, without the definition: what a worker process reading
    files for ``crontask validate`` sends back."""

    key: str
    location: Location


class Located(Protocol):
    """A task key and where it is defined: a ``Definition`` or a ``Placed``."""

    @property
    def key(self) -> str: ...

    @property
    def location(self) -> Location: ...


_L = TypeVar("_L", bound=Located)


def assemble(
    definitions: Iterable[Definition], errors: Iterable[DefinitionError] = ()
) -> DesiredState:
    tasks, conflicts = _settle_all(definitions)
    return _state(tasks, conflicts, errors)


def check(
    placed: Iterable[Located], errors: Iterable[DefinitionError] = ()
) -> tuple[int, list[str]]:
    """How many tasks, and every problem line, that ``assemble`` of the same definitions
    would give: for definitions read elsewhere, of which only their places came back."""
    chosen, conflicts = _settle_all(placed)
    return len(chosen), _state({}, conflicts, errors).problems


def reassemble(
    previous: DesiredState,
    keys: Collection[str],
    definitions: Iterable[Definition],
    errors: Iterable[DefinitionError] = (),
) -> DesiredState:
    """``assemble`` for a change confined to ``keys``, in proportion to the change.

    ``definitions`` are all those in force for ``keys`` (and may hold no others); every other
    key keeps what ``previous`` had. ``errors`` are all current errors. The result equals
    ``assemble`` of everything; ``previous`` is not modified (other threads may be reading it).
    """
    conflicts = {c.key: c for c in previous.conflicts}
    settled: dict[str, Definition] = {}
    for key in keys:
        conflicts.pop(key, None)
    for key, candidates in _by_key(definitions).items():
        _settle(key, candidates, settled, conflicts)
    changes: dict[str, Definition | None] = dict.fromkeys(keys)
    changes.update(settled)
    return _state(_layered(previous.tasks, changes), conflicts, errors, previous)


def _layered(
    tasks: Mapping[str, Definition], changes: dict[str, Definition | None]
) -> Mapping[str, Definition]:
    """``tasks`` with ``changes`` applied (None: removed), without copying ``tasks``: a copy
    of 100 000 entries was most of an edit's pass. The changes pile up in a layer over the
    last full mapping until they are a thirty-second of it, then one copy folds them in (so
    an edit costs O(1) amortised)."""
    if not changes:
        return tasks  # a pass that changed nothing (an API poll, say) keeps what it had
    if isinstance(tasks, _Layered):
        base, changes = tasks.base, {**tasks.changes, **changes}
    else:
        base = tasks
    if len(changes) > max(_LAYER_MIN, len(base) // 32):
        flat = dict(base)
        for key, definition in changes.items():
            if definition is None:
                flat.pop(key, None)
            else:
                flat[key] = definition
        return flat
    return _Layered(base, changes)


_LAYER_MIN = 64


class _Layered(Mapping[str, Definition]):
    """An immutable mapping: ``base`` (never modified) overlaid by ``changes``."""

    __slots__ = ("_length", "base", "changes")

    def __init__(self, base: Mapping[str, Definition], changes: dict[str, Definition | None]):
        self.base = base
        self.changes = changes
        added = sum(d is not None and k not in base for k, d in changes.items())
        removed = sum(d is None and k in base for k, d in changes.items())
        self._length = len(base) + added - removed

    def __getitem__(self, key: str) -> Definition:
        if key in self.changes:
            found = self.changes[key]
            if found is None:
                raise KeyError(key)
            return found
        return self.base[key]

    def __contains__(self, key: object) -> bool:
        if key in self.changes:
            return self.changes[key] is not None
        return key in self.base

    def __iter__(self) -> Iterator[str]:
        changes = self.changes
        yield from (key for key in self.base if key not in changes)
        yield from (key for key, definition in changes.items() if definition is not None)

    def __len__(self) -> int:
        return self._length


def _by_key(items: Iterable[_L]) -> dict[str, list[_L]]:
    by_key: dict[str, list[_L]] = {}
    for item in items:
        by_key.setdefault(item.key, []).append(item)
    return by_key


def _settle_all(items: Iterable[_L]) -> tuple[dict[str, _L], dict[str, Conflict]]:
    chosen: dict[str, _L] = {}
    conflicts: dict[str, Conflict] = {}
    for key, candidates in _by_key(items).items():
        _settle(key, candidates, chosen, conflicts)
    return chosen, conflicts


def _settle(
    key: str,
    candidates: list[_L],
    tasks: dict[str, _L],
    conflicts: dict[str, Conflict],
) -> None:
    if len(candidates) > 1:
        candidates.sort(key=lambda d: d.location)
        conflicts[key] = Conflict(
            key, candidates[0].location, tuple(d.location for d in candidates[1:])
        )
    tasks[key] = candidates[0]


def _state(
    tasks: Mapping[str, Definition],
    conflicts: dict[str, Conflict],
    errors: Iterable[DefinitionError],
    previous: DesiredState | None = None,
) -> DesiredState:
    given = tuple(errors)
    if previous is None:
        ordered = tuple(sorted(given, key=_error_order))
    elif given == previous.given:
        ordered = previous.errors  # what consumers compare by identity (``problem_lines``)
    else:
        ordered = _in_order(given, previous.errors)
    return DesiredState(
        tasks=tasks,
        errors=ordered,
        conflicts=tuple(conflicts[key] for key in sorted(conflicts)),
        given=given,
    )


def _in_order(
    errors: tuple[DefinitionError, ...], previous: tuple[DefinitionError, ...]
) -> tuple[DefinitionError, ...]:
    """``errors`` sorted by place, then message. Those ``previous`` (so sorted) holds keep
    their order and the few new ones are put in theirs: a pass that changed one broken file
    among 5 000 costs identity checks, not a sort of 100 000 errors (0.4 s)."""
    ids = set(map(id, errors))
    kept = [e for e in previous if id(e) in ids]
    known = set(map(id, kept))
    if len(ids) != len(errors) or len(known) != len(kept):  # an object twice: no shortcut
        return tuple(sorted(errors, key=_error_order))
    added = [e for e in errors if id(e) not in known]
    if len(added) > len(errors) // 8:
        return tuple(sorted(errors, key=_error_order))
    for error in added:
        bisect.insort(kept, error, key=_error_order)
    return tuple(kept)


def _error_order(error: DefinitionError) -> tuple[str, str, int, int, str]:
    # Location's own order (``order=True``), as one tuple of plain values: compared in C.
    where = error.location
    return (where.source, where.path, where.line, where.column, error.message)
