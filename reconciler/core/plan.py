"""The planner: ``plan(desired, actual) -> Plan``. Pure: no I/O, no clock.

Changes are detected by the content hash of the normalized spec, so a pass that changes nothing
plans nothing, and applying the same plan twice is harmless. With ``keys`` the comparison is
limited to the keys an event marked dirty, so an event-driven pass costs what changed, not the
number of tasks; a resync passes no keys and compares everything.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from reconciler.core.desired import Definition


class Operation(enum.StrEnum):
    ADD = "add"
    UPDATE = "update"
    REMOVE = "remove"


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    operation: Operation
    key: str
    desired: Definition | None  # None for REMOVE
    current: Definition | None  # None for ADD

    @property
    def reason(self) -> str:
        if self.operation is Operation.ADD:
            assert self.desired is not None
            return f"declared in {self.desired.location}"
        if self.operation is Operation.UPDATE:
            assert self.desired is not None
            return f"spec changed in {self.desired.location}"
        return "no longer declared"

    def field_changes(self) -> list[FieldChange]:
        old = self.current.task.to_document() if self.current else {}
        new = self.desired.task.to_document() if self.desired else {}
        return diff_documents(old, new)


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    steps: tuple[Step, ...] = ()
    unchanged: int = 0  # of the keys compared
    # Removals withheld because the whole desired set came back empty (see plan()).
    held_removals: tuple[str, ...] = ()

    def of(self, operation: Operation) -> list[Step]:
        return [s for s in self.steps if s.operation is operation]

    @property
    def empty(self) -> bool:
        return not self.steps

    def summary(self) -> str:
        counts = {op: len(self.of(op)) for op in Operation}
        text = (
            f"{counts[Operation.ADD]} to add, {counts[Operation.UPDATE]} to change, "
            f"{counts[Operation.REMOVE]} to remove, {self.unchanged} unchanged"
        )
        if self.held_removals:
            text += f" ({len(self.held_removals)} removals held: desired set is empty)"
        return text


def plan(
    desired: Mapping[str, Definition],
    actual: Mapping[str, Definition],
    *,
    keys: Collection[str] | None = None,
    allow_empty: bool = False,
    authoritative: Collection[str] = (),
) -> Plan:
    """What to do so that ``actual`` matches ``desired``.

    ``desired`` and ``actual`` map task keys to definitions (``actual``: the ones applied to the
    scheduler). ``keys`` limits the comparison to those keys. When ``desired`` is empty while
    ``actual`` is not, removals are held unless ``allow_empty``: a source that suddenly yields
    nothing (a wrong path, a failed checkout) is far more often a mistake than an intent. Not
    those of tasks read from a source kind in ``authoritative``, whose empty read is the state
    its user made (the CronTasks deleted from a cluster that was listed).
    """
    candidates = sorted(set(desired) | set(actual) if keys is None else set(keys))
    steps: list[Step] = []
    removals: list[str] = []
    unchanged = 0
    for key in candidates:
        want, have = desired.get(key), actual.get(key)
        if want is None and have is None:
            continue
        if have is None:
            steps.append(Step(Operation.ADD, key, want, None))
        elif want is None:
            removals.append(key)
        elif want.hash != have.hash:
            steps.append(Step(Operation.UPDATE, key, want, have))
        else:
            unchanged += 1
    held: list[str] = []
    if removals and not desired and not allow_empty:
        held = [k for k in removals if actual[k].location.source not in authoritative]
        removals = [k for k in removals if actual[k].location.source in authoritative]
    steps.extend(Step(Operation.REMOVE, key, None, actual[key]) for key in removals)
    return Plan(tuple(steps), unchanged, held_removals=tuple(held))


@dataclasses.dataclass(frozen=True, slots=True)
class FieldChange:
    path: str  # dotted, e.g. "spec.command.args"
    old: Any  # None when added
    new: Any  # None when removed

    def __str__(self) -> str:
        if self.old is None:
            return f"+ {self.path}: {_show(self.new)}"
        if self.new is None:
            return f"- {self.path}: {_show(self.old)}"
        return f"~ {self.path}: {_show(self.old)} -> {_show(self.new)}"


def diff_documents(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldChange]:
    """Field-by-field differences between two resource documents, in a stable order."""
    return list(_diff("", old, new))


def _diff(prefix: str, old: Any, new: Any) -> Iterator[FieldChange]:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for name in sorted(set(old) | set(new)):
            path = f"{prefix}.{name}" if prefix else str(name)
            yield from _diff(path, old.get(name), new.get(name))
    elif old != new:
        yield FieldChange(prefix, old, new)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)
