"""The rule of ``RunStore.claim_exclusive`` (with replicas, a run's claim under Forbid and
Replace): which records of a batch may be inserted, given their tasks' running attempts. One
function shared by every store, so that the rule cannot drift between them."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from reconciler.core.runs import RunRecord, RunStatus


@dataclass(frozen=True, slots=True)
class ExclusiveClaim:
    """What :meth:`RunStore.claim_exclusive` did with one record."""

    claimed: bool
    # Why it was not: the running attempts of its task that are not its owner's (without
    # their output). Empty when it was not claimed because its ``(id, attempt)`` exists.
    running: tuple[RunRecord, ...] = ()


def decide_exclusive(
    records: Sequence[RunRecord], stored: Collection[RunRecord]
) -> list[ExclusiveClaim]:
    """The answers of :meth:`RunStore.claim_exclusive` for ``records``, in order, given the
    ``stored`` attempts of their tasks that decide it: the running ones, and those whose
    ``(id, attempt)`` is one of theirs. Each record sees the ones before it as inserted
    (shared by every store, so the rule cannot drift between them)."""
    keys = {(r.id, r.attempt) for r in stored}
    running: dict[str, list[RunRecord]] = {}
    for r in sorted(stored, key=lambda r: (r.scheduled_at, r.id, r.attempt)):  # oldest first
        if r.status is RunStatus.RUNNING:
            running.setdefault(r.task, []).append(dataclasses.replace(r, output=""))
    answers: list[ExclusiveClaim] = []
    for record in records:
        if (record.id, record.attempt) in keys:
            answers.append(ExclusiveClaim(False))
            continue
        others = [r for r in running.get(record.task, ()) if r.owner != record.owner]
        if others:
            answers.append(ExclusiveClaim(False, tuple(others)))
            continue
        answers.append(ExclusiveClaim(True))
        keys.add((record.id, record.attempt))
        if record.status is RunStatus.RUNNING:
            running.setdefault(record.task, []).append(dataclasses.replace(record, output=""))
    return answers
