"""Run semantics end to end: overlapping slots, two instances on one store, downtime."""

from __future__ import annotations

import itertools
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus, Trigger
from reconciler.store import sqlite_url
from tests.e2e.conftest import Crontask
from tests.e2e.test_run import append, lines, task
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e


def test_forbid_skips_and_records_slots_while_a_run_outlives_its_interval(
    crontask: Callable[..., Crontask],
) -> None:
    app = crontask()
    (app.tasks / "slow.yaml").write_text(task("slow", ["sleep", "3"]))

    def skipped() -> list[object]:
        return [r for r in app.runs("default/slow") if r.reason == "ConcurrencyForbid"]

    wait_for("two skipped slots", lambda: len(skipped()) >= 2)
    # Judged from the records, not from the run going as they are read: by then the first
    # may have ended and the next begun (a skip's record is written after it is decided).
    runs = app.runs("default/slow")
    ran = sorted(
        (r for r in runs if r.status is not RunStatus.SKIPPED), key=lambda r: r.scheduled_at
    )
    for before, after in itertools.pairwise(ran):  # never two at once
        assert before.finished_at is not None, f"{before.id} still running as {after.id} ran"
        assert after.started_at is not None
        assert before.finished_at <= after.started_at
    for record in runs:
        if record.reason == "ConcurrencyForbid":
            assert record.status is RunStatus.SKIPPED
            # It names the run going at its slot, one that began before it.
            (going,) = [r for r in ran if r.id in (record.message or "")]
            assert going.scheduled_at < record.scheduled_at


@pytest.mark.slow  # 10 s: make test keeps to its budget; make test-slow runs it
def test_two_instances_on_one_store_run_each_slot_once(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    first = crontask()
    out = tmp_path / "tick.txt"  # both write here, whatever their working directory
    (first.tasks / "tick.yaml").write_text(task("tick", append(str(out))))
    # A state directory is one instance's (the second would be refused): the store is shared.
    (tmp_path / "second").mkdir()
    second = Crontask(tmp_path / "second", first.tasks, ["--db", sqlite_url(first.state)])
    try:
        second.start()
        second.wait_log("task added")
        wait_for("eight runs", lambda: len(lines(out)) >= 8)
        wait_for("both instances racing", lambda: "already claimed" in first.log() + second.log())
        first.stop()
    finally:
        second.stop()
    executed = Counter(line.split()[0] for line in lines(out))
    assert executed, "nothing ran"
    assert max(executed.values()) == 1, f"a slot ran twice: {executed.most_common(3)}"
    # Each slot that ran has its one record, and it says the run succeeded: a record that
    # claimed a slot without running it, or a run without a record, would show here.
    records = {r.id: r for r in first.runs("default/tick")}
    assert set(executed) <= set(records)
    assert {records[run].status for run in executed} == {RunStatus.SUCCEEDED}
    claimed = {run for run, r in records.items() if r.status is RunStatus.SUCCEEDED}
    assert claimed == set(executed)


@pytest.mark.slow  # 9 s: make test keeps to its budget; make test-slow runs it
def test_after_downtime_only_the_latest_missed_slot_runs(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    app = crontask()
    (app.tasks / "tick.yaml").write_text(task("tick", append("tick.txt")))
    wait_for("a first run", lambda: lines(tmp_path / "tick.txt"))
    app.stop(signal.SIGKILL)
    # Downtime: several one-second slots pass while nothing runs.
    time.sleep(4)
    app.start()
    catchup = wait_for(
        "a catch-up run",
        lambda: next((r for r in app.runs("default/tick") if r.trigger is Trigger.CATCHUP), None),
    )
    assert catchup is not None
    # The skipped slots' record is written with the store's next write, after the claim that
    # lets the catch-up start (claims go first): wait for it rather than read it at once.
    superseded = wait_for(
        "the superseded record",
        lambda: [r for r in app.runs("default/tick") if r.reason == "Superseded"],
    )
    assert len(superseded) == 1
    assert superseded[0].status is RunStatus.SKIPPED
    assert superseded[0].scheduled_at < catchup.scheduled_at
    assert "slots after" in (superseded[0].message or "")
    # No slot ran twice across the restart.
    executed = Counter(line.split()[0] for line in lines(tmp_path / "tick.txt"))
    assert max(executed.values()) == 1
