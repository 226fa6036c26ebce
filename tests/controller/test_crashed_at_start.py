"""``CrashedAtStart``: the runs a start found its predecessor's are told of at its first pass
that succeeds, those of the tasks it declares only; the others' records get the note that
nobody told of them (a run the store had no record of is written only where it has none)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from reconciler.controller.crashed import CrashedAtStart
from reconciler.controller.reconcile import PassResult
from reconciler.core.desired import DesiredState
from reconciler.core.plan import Plan
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id, untold
from reconciler.store.base import interrupted
from tests.controller.test_policies import KEY, task

AT = datetime(2026, 12, 1, tzinfo=UTC)
OWNER = "host-a:100:aaaa"


class Written:
    """Records as the recorder's ``later`` takes them."""

    def __init__(self) -> None:
        self.saves: list[RunRecord] = []
        self.creates: list[RunRecord] = []

    def later(self, saves: Sequence[RunRecord], creates: Sequence[RunRecord] = ()) -> None:
        self.saves += saves
        self.creates += creates


def _crashed(key: str) -> RunRecord:
    running = RunRecord(
        id=run_id(key, AT), task=key, scheduled_at=AT, trigger=Trigger.SCHEDULE,
        status=RunStatus.RUNNING, started_at=AT, owner=OWNER,
    )  # fmt: skip
    return interrupted(running, AT)


def _pass(ok: bool = True) -> PassResult:
    error = None if ok else RuntimeError("a source failed")
    return PassResult(None, Plan(), DesiredState({KEY: task()}), 0.01, error=error)


def test_told_at_the_first_pass_that_succeeds_only_of_the_tasks_it_declares() -> None:
    told: list[list[RunRecord]] = []
    written = Written()
    kept, removed, lost = _crashed(KEY), _crashed("ops/removed"), _crashed("ops/lost")
    observer = CrashedAtStart(
        [kept, removed, lost], told.append, written, [(lost.id, lost.attempt)]
    )
    observer(_pass(ok=False))
    assert (told, written.saves, written.creates) == ([], [], [])
    observer(_pass())
    observer(_pass())  # once
    assert told == [[kept]]
    assert [r.id for r in written.saves] == [removed.id]
    assert [r.id for r in written.creates] == [lost.id]
    assert all(untold(r) for r in [*written.saves, *written.creates])
    assert written.saves[0].finished_at == removed.finished_at  # only the note is new
