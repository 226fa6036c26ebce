"""Start-up recovery of a run whose claim died with its crontask: the store could not take the
claim (a full disk: the run went on, its records in memory), and the crontask was then killed.
The command it left is found by its environment, with no record in the store: it is stopped
and recorded ``interrupted``, so that catch-up sees the slot taken and ``Forbid`` holds. Real
processes; the in-memory store, and one that refuses writes as a full disk does."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.controller.instance import instance_id, recover, recovery
from reconciler.core.runs import PROCESS_DIED, RunRecord, RunStatus, Trigger, run_id
from reconciler.runner import leftovers
from reconciler.store.base import StoreUnavailable
from reconciler.store.memory import MemoryRunStore
from tests.helpers import wait_for

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=5)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
        proc.wait()


def dead_instance() -> str:
    """An instance of this host whose process is gone."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    host = instance_id().split(":")[0]
    return f"{host}:{gone.pid}:0badc0de"


def ended(
    task: str,
    slot: datetime,
    owner: str,
    attempt: int = 1,
    status: RunStatus = RunStatus.FAILED,
    **fields: object,
) -> RunRecord:
    return RunRecord(
        run_id(task, slot),
        task,
        slot,
        Trigger.SCHEDULE if attempt == 1 else Trigger.RETRY,
        status,
        attempt=attempt,
        started_at=slot,
        finished_at=slot + timedelta(seconds=1),
        exit_code=1,
        owner=owner,
        **fields,  # type: ignore[arg-type]
    )


def left(
    procs: list[subprocess.Popen[bytes]], run: str, instance: str, attempt: int = 1
) -> subprocess.Popen[bytes]:
    """A command left by ``instance``'s run ``run`` (its environment says so)."""
    env = {
        "PATH": os.environ["PATH"],
        "CRONTASK_RUN_ID": run,
        "CRONTASK_ATTEMPT": str(attempt),
        "CRONTASK_INSTANCE": instance,
    }
    proc = subprocess.Popen(["sleep", "30"], env=env, start_new_session=True)
    proc.run_id = run  # type: ignore[attr-defined]  # what started() waits for
    procs.append(proc)
    return proc


def started(runs: Sequence[str]) -> None:
    wait_for(
        "the commands to start",
        lambda: {r.run_id for r in leftovers.scan()} >= set(runs) or None,
    )


def test_a_command_whose_claim_died_is_stopped_and_its_slot_recorded(
    procs: list[subprocess.Popen[bytes]],
) -> None:
    me, dead, older = instance_id(), dead_instance(), dead_instance()
    store = MemoryRunStore()
    store.claim(ended("ops/lost", T0, dead))
    store.claim(ended("ops/retried", T0, dead))
    store.claim(ended("ops/victim", T0, dead))
    slot = T0 + timedelta(seconds=20)
    # Another task's newer claim went in when the store came back, before the lost one's.
    store.claim(ended("ops/often", slot + timedelta(seconds=8), dead))
    # And the task's own next slot, skipped beside its lost one's command (Forbid).
    store.claim(ended("ops/forbid", T0, dead))
    store.claim(ended("ops/forbid", slot + timedelta(seconds=20), dead, status=RunStatus.SKIPPED))
    cases = {
        # The slot after the last stored: its claim never reached the store.
        "lost": left(procs, run_id("ops/lost", slot), dead),
        "lost before a skip": left(procs, run_id("ops/forbid", slot), dead),
        # A retry of a stored run, its attempt not stored: catch-up never repeats a retry, and
        # its record may have been pruned (a daemon left on purpose): it stays.
        "retry": left(procs, run_id("ops/retried", T0), dead, attempt=2),
        # A manual run: not repeated by catch-up either.
        "manual": left(procs, run_id("ops/lost", slot + timedelta(microseconds=5)), dead),
        # A slot not due yet: a command may name any task's future slot, to take it.
        "future": left(procs, run_id("ops/victim", LATER + timedelta(minutes=1)), dead),
        # A task with no slot stored: removed, its runs pruned since (or a new store).
        "removed": left(procs, run_id("ops/gone", T0 - timedelta(seconds=5)), dead),
        # Older than the task's newest stored slot: a run pruned since, which left this on
        # purpose (a daemon): it stays, as it would with its crontask alive.
        "pruned": left(procs, run_id("ops/lost", T0 - timedelta(seconds=20)), dead),
        # Of a dead crontask that is not the state directory's last holder: its records were
        # judged at the start that followed it.
        "older": left(procs, run_id("ops/other", slot), older),
        # No run's id (anyone may set an environment).
        "no run": left(procs, "ops.lost.yesterday", dead),
    }
    started([p.run_id for p in cases.values()])  # type: ignore[attr-defined]  # all judged

    told = recover(store, me, LATER, grace=5.0, gone=[dead], tells_of=[dead])

    assert cases["lost"].wait(timeout=5) == -15
    assert cases["lost before a skip"].wait(timeout=5) == -15
    for case in ("retry", "manual", "future", "removed", "pruned", "older", "no run"):
        assert cases[case].poll() is None, case
    record = store.get(run_id("ops/lost", slot))
    assert record is not None
    assert (record.task, record.scheduled_at, record.trigger) == ("ops/lost", slot, "schedule")
    assert (record.status, record.reason, record.owner) == (
        RunStatus.INTERRUPTED,
        PROCESS_DIED,
        dead,
    )
    assert "died before the run store took its record" in (record.message or "")
    # Catch-up counts missed slots from here: the slot is taken.
    assert store.last_slots(["ops/lost"]) == {"ops/lost": slot}
    # Its predecessor's: told of, as its other crashed runs are.
    assert [r.id for r in told] == [run_id("ops/forbid", slot), run_id("ops/lost", slot)]
    for nothing in (
        store.get(run_id("ops/other", slot)),
        store.get(run_id("ops/retried", T0), 2),
        store.get(run_id("ops/victim", LATER + timedelta(minutes=1))),
        store.get(run_id("ops/gone", T0 - timedelta(seconds=5))),
    ):
        assert nothing is None


def test_a_store_with_no_slot_says_nothing_of_the_crontask_that_died(
    procs: list[subprocess.Popen[bytes]],
) -> None:
    """A new or replaced store (``--db`` moved, ``runs.db`` restored): the command of its
    newest run is no lost claim's, and stays."""
    me, dead = instance_id(), dead_instance()
    store = MemoryRunStore()
    daemon = left(procs, run_id("ops/serve", T0), dead)
    started([run_id("ops/serve", T0)])

    assert recover(store, me, LATER, grace=5.0, gone=[dead], tells_of=[dead]) == []

    assert daemon.poll() is None
    assert store.get(run_id("ops/serve", T0)) is None


class FullDisk(MemoryRunStore):
    """Reads go on, writes fail as a full disk makes SQLite's fail."""

    def claim_many(self, records: Sequence[RunRecord]) -> list[bool]:
        raise StoreUnavailable("database or disk is full")

    def mark_interrupted(self, *args: object, **kwargs: object) -> list[RunRecord]:
        raise StoreUnavailable("database or disk is full")

    def complete(self, record: RunRecord) -> None:
        raise StoreUnavailable("database or disk is full")


def test_a_store_that_takes_no_writes_keeps_the_ends_and_the_commands_are_stopped(
    procs: list[subprocess.Popen[bytes]],
) -> None:
    me, dead = instance_id(), dead_instance()
    store = FullDisk()
    running = RunRecord(
        run_id("ops/running", T0), "ops/running", T0, Trigger.SCHEDULE, RunStatus.RUNNING,
        started_at=T0, owner=dead,
    )  # fmt: skip
    MemoryRunStore.claim_many(store, [running, ended("ops/lost", T0, dead)])
    slot = T0 + timedelta(seconds=20)
    recorded = left(procs, running.id, dead)
    lost = left(procs, run_id("ops/lost", slot), dead)
    started([running.id, run_id("ops/lost", slot)])

    found = recovery(store, me, LATER, grace=5.0, gone=[dead])

    assert recorded.wait(timeout=5) == -15
    assert lost.wait(timeout=5) == -15
    assert [(r.id, r.status) for r in found.unsaved] == [(running.id, RunStatus.INTERRUPTED)]
    assert [(r.id, r.status, r.scheduled_at) for r in found.unclaimed] == [
        (run_id("ops/lost", slot), RunStatus.INTERRUPTED, slot)
    ]
    assert found.told == []
