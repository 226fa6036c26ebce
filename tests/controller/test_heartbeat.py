"""The heartbeat (``controller.heartbeat``): each crontask renews its row in the run store, and
marks the runs of a crontask whose row it has seen unchanged for longer than its lease. The
in-memory run store, fake clocks (the judge's own, and the time each crontask writes), real
processes for "alive on this host"."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest

from reconciler.controller.heartbeat import (
    LEASE_MAX_SECONDS,
    LEASE_SECONDS,
    UNTOLD_SECONDS,
    Heartbeat,
)
from reconciler.controller.instance import instance_id
from reconciler.core.runs import PROCESS_DIED, UNTOLD, RunRecord, RunStatus
from reconciler.store.base import StoreUnavailable
from reconciler.store.memory import MemoryRunStore
from tests.controller.test_recover_identity import T0, owner, running, start_time, status

T = TypeVar("T")
# Crontasks on other machines (another boot): nothing on this host says whether they live.
ELSEWHERE = owner(4242, 1, host="elsewhere", boot="0ther000", mark="e1")
ELSEWHERE_TOO = owner(4243, 1, host="elsewhere", boot="0ther000", mark="e2")


async def now_call(fn: Callable[..., T], *args: object) -> T:
    return fn(*args)


class Judge:
    """A heartbeat on its own clock (``tick`` moves it), telling what it marks."""

    def __init__(
        self,
        store: MemoryRunStore,
        *,
        outlives: Callable[[RunRecord], bool] = lambda record: False,
        declares: Callable[[str], bool] = lambda key: True,
        declaring: Callable[[], bool] = lambda: True,
        arrivals: Callable[[], int] = lambda: 0,
    ) -> None:
        self.seconds = 0.0
        self.told: list[RunRecord] = []
        self.heartbeat = Heartbeat(
            store,
            instance_id(),
            call=now_call,
            outlives=outlives,
            declares=declares,
            declaring=declaring,
            arrivals=arrivals,
            on_interrupted=self.told.extend,
            clock=lambda: T0 + timedelta(seconds=self.seconds),
            monotonic=lambda: self.seconds,
        )

    def tick(self, seconds: float) -> None:
        self.seconds += seconds
        asyncio.run(self.heartbeat.beat())


def beating(store: MemoryRunStore, instance: str, at: float, lease: float = LEASE_SECONDS) -> None:
    """``instance`` beats, by its own clock (a day off this judge's: never compared)."""
    store.beat(instance, lease, T0 + timedelta(days=1, seconds=at))


def test_a_row_unchanged_for_its_lease_has_its_runs_interrupted_and_told() -> None:
    store = MemoryRunStore()
    beating(store, ELSEWHERE, 0)
    beating(store, ELSEWHERE_TOO, 0)
    running(store, "default/a", ELSEWHERE)
    running(store, "default/b", ELSEWHERE_TOO)
    judge = Judge(store)
    judge.tick(0)  # first sight: judged from here on
    for second in range(5, 31, 5):
        beating(store, ELSEWHERE_TOO, second)  # lives on
        judge.tick(5)
    assert (status(store, "default/a"), status(store, "default/b")) == (RunStatus.RUNNING,) * 2
    judge.tick(1)
    assert status(store, "default/a") is RunStatus.INTERRUPTED
    assert status(store, "default/b") is RunStatus.RUNNING
    assert [(r.task, r.reason) for r in judge.told] == [("default/a", PROCESS_DIED)]
    # Its runs ended, its row goes; the judge's and the live one's stay.
    assert store.beats().keys() == {judge.heartbeat.me, ELSEWHERE_TOO}
    # Seen beating: the live one only (a row that never changed may be a killed process's).
    assert judge.heartbeat.seen_beating == {ELSEWHERE_TOO}


def test_a_new_crontask_judges_nothing_before_it_watched_a_lease() -> None:
    """However old the time in the row (the writer's clock may be anything)."""
    store = MemoryRunStore()
    store.beat(ELSEWHERE, LEASE_SECONDS, T0 - timedelta(days=365))
    running(store, "default/a", ELSEWHERE)
    judge = Judge(store)
    judge.tick(0)
    judge.tick(LEASE_SECONDS)
    assert status(store, "default/a") is RunStatus.RUNNING
    judge.tick(1)
    assert status(store, "default/a") is RunStatus.INTERRUPTED


class Flaky(MemoryRunStore):
    down = False

    def beat(self, instance: str, lease_seconds: float, now: datetime) -> None:
        if self.down:
            raise StoreUnavailable("down")
        super().beat(instance, lease_seconds, now)


def test_after_the_store_was_down_the_others_get_a_whole_lease_again() -> None:
    """Everyone was cut off: a row unchanged through the outage proves nothing."""
    store = Flaky()
    beating(store, ELSEWHERE, 0)
    running(store, "default/a", ELSEWHERE)
    judge = Judge(store)
    judge.tick(0)
    store.down = True
    judge.tick(LEASE_SECONDS + 10)
    store.down = False
    judge.tick(1)  # back: the other has not beaten yet, and is not judged for it
    assert status(store, "default/a") is RunStatus.RUNNING
    beating(store, ELSEWHERE, 50)
    judge.tick(5)  # seen beating again
    judge.tick(LEASE_SECONDS)
    assert status(store, "default/a") is RunStatus.RUNNING
    judge.tick(1)  # a lease after its last beat, as this judge saw it
    assert status(store, "default/a") is RunStatus.INTERRUPTED


def test_a_judge_paused_for_longer_than_the_lease_finds_the_others_beat_meanwhile() -> None:
    store = MemoryRunStore()
    beating(store, ELSEWHERE, 0)
    running(store, "default/a", ELSEWHERE)
    judge = Judge(store)
    judge.tick(0)
    beating(store, ELSEWHERE, 40)  # while the judge was stopped (SIGSTOP, a frozen VM)
    judge.tick(60)
    assert status(store, "default/a") is RunStatus.RUNNING


def test_the_runs_of_tasks_this_crontask_does_not_declare_are_marked_untold() -> None:
    store = MemoryRunStore()
    beating(store, ELSEWHERE, 0)
    running(store, "default/mine", ELSEWHERE)
    running(store, "team-b/theirs", ELSEWHERE)
    judge = Judge(store, declares=lambda key: key == "default/mine")
    judge.tick(0)
    judge.tick(LEASE_SECONDS + 1)
    assert [r.task for r in judge.told] == ["default/mine"]
    theirs = store.latest("team-b/theirs")
    assert theirs is not None
    assert (theirs.status, theirs.reason) == (RunStatus.INTERRUPTED, PROCESS_DIED)
    assert theirs.message is not None
    assert theirs.message.endswith(UNTOLD)
    mine = store.latest("default/mine")
    assert mine is not None
    assert mine.message is not None
    assert not mine.message.endswith(UNTOLD)


def test_a_crontask_that_declares_the_task_tells_of_its_run_though_another_judged_first() -> None:
    """The first to judge a dead crontask (beat timing) does not decide that nobody tells."""
    store = MemoryRunStore()
    beating(store, ELSEWHERE, 0)
    running(store, "team-b/theirs", ELSEWHERE)
    other = Judge(store, declares=lambda key: key == "default/mine")
    team_b = Judge(store, declares=lambda key: key == "team-b/theirs")
    other.tick(0)
    team_b.tick(0)
    other.tick(LEASE_SECONDS + 1)  # judges first: not its task, marked untold
    assert status(store, "team-b/theirs") is RunStatus.INTERRUPTED
    assert other.told == []
    team_b.tick(LEASE_SECONDS + 4)  # the row went: it looks for runs nobody told of
    assert [r.task for r in team_b.told] == ["team-b/theirs"]
    theirs = store.latest("team-b/theirs")
    assert theirs is not None
    assert theirs.message is not None
    assert not theirs.message.endswith(UNTOLD)
    team_b.tick(5)
    other.tick(5)
    assert [r.task for r in team_b.told] == ["team-b/theirs"]  # once
    assert other.told == []


def marked_untold() -> MemoryRunStore:
    """The store after a crontask that does not declare ``team-b/theirs`` judged the one that
    ran it dead, marked the run as one nobody told of, and removed its row."""
    store = MemoryRunStore()
    beating(store, ELSEWHERE, 0)
    running(store, "team-b/theirs", ELSEWHERE)
    other = Judge(store, declares=lambda key: False)
    other.tick(0)
    other.tick(LEASE_SECONDS + 1)
    assert ELSEWHERE not in store.beats()
    return store


def test_a_pod_recreated_after_the_others_judged_its_predecessor_tells_of_its_run() -> None:
    """It never saw the row; it takes the run at its first sweep once its first pass has said
    which tasks it declares (before that it knows none, and takes nothing)."""
    store = marked_untold()
    passed = False
    pod = Judge(store, declares=lambda key: passed, declaring=lambda: passed)
    pod.tick(300)  # the node's pods are evicted after 5 minutes
    assert pod.told == []
    passed = True
    pod.tick(5)
    assert [r.task for r in pod.told] == ["team-b/theirs"]
    pod.tick(5)
    assert len(pod.told) == 1


def test_runs_it_marked_before_its_first_pass_are_told_after_it() -> None:
    """Before its first pass a crontask declares nothing (a slow first clone or list): what it
    marks then says nobody told of it, until the pass says which tasks are its own."""
    store = MemoryRunStore()
    beating(store, ELSEWHERE, 0)
    running(store, "team-b/theirs", ELSEWHERE)
    desired: set[str] = set()
    pod = Judge(store, declares=lambda key: key in desired, declaring=lambda: bool(desired))
    pod.tick(0)
    pod.tick(LEASE_SECONDS + 1)
    pod.tick(5)
    assert status(store, "team-b/theirs") is RunStatus.INTERRUPTED
    assert pod.told == []
    desired.add("team-b/theirs")  # the first pass has applied
    pod.tick(5)
    assert [r.task for r in pod.told] == ["team-b/theirs"]


def test_a_task_declared_here_after_the_look_has_its_untold_run_told() -> None:
    """A commit moves the task to this crontask minutes after its crash was marked: the pass
    that declares it anew (``Reconciler.arrivals``) has the next sweep look again, once."""
    store = marked_untold()
    desired: set[str] = set()
    arrivals = 0
    pod = Judge(store, declares=lambda key: key in desired, arrivals=lambda: arrivals)
    pod.tick(5)
    pod.tick(5)  # the row of the crontask that marked it, still there, is not judged yet
    assert pod.told == []
    desired.add("team-b/theirs")
    arrivals += 1
    pod.tick(5)
    assert [r.task for r in pod.told] == ["team-b/theirs"]
    assert store.untold(T0) == []
    pod.tick(5)
    assert len(pod.told) == 1


def test_a_run_marked_untold_long_ago_is_not_told_now() -> None:
    store = marked_untold()
    pod = Judge(store)
    pod.tick(UNTOLD_SECONDS + LEASE_SECONDS + 2)  # by its clock, more than an hour after it
    assert pod.told == []


def test_a_crontask_that_tells_of_no_crash_takes_no_untold_run() -> None:
    """A replica, or a crontask without --notifications: the record must go on saying that
    nobody told of the run."""
    store = marked_untold()
    replica = Judge(store)
    replica.heartbeat.tells = False
    replica.tick(5)
    assert replica.told == []
    assert [r.task for r in store.untold(T0)] == ["team-b/theirs"]


def test_a_crontask_that_tells_of_no_crash_marks_every_run_untold() -> None:
    """Its own tasks' runs too: a crontask that tells later must not read them as told."""
    store = MemoryRunStore()
    beating(store, ELSEWHERE, 0)
    running(store, "default/a", ELSEWHERE)
    judge = Judge(store)
    judge.heartbeat.tells = False
    judge.tick(0)
    judge.tick(LEASE_SECONDS + 1)
    assert judge.told == []
    assert [r.task for r in store.untold(T0)] == ["default/a"]


def test_runs_of_tasks_nobody_declares_do_not_hide_one_it_declares(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """They stay untold for the hour, and are read first: the look goes on page by page."""
    monkeypatch.setattr("reconciler.store.memory.UNTOLD_MAX", 2)
    monkeypatch.setattr("reconciler.controller.heartbeat.UNTOLD_MAX", 2)
    store = MemoryRunStore()
    beating(store, ELSEWHERE, 0)
    for name in ("a", "b", "c", "d", "e"):
        running(store, f"nobody/{name}", ELSEWHERE)
    running(store, "team-b/z", ELSEWHERE)
    other = Judge(store, declares=lambda key: False)
    other.tick(0)
    other.tick(LEASE_SECONDS + 1)
    team_b = Judge(store, declares=lambda key: key == "team-b/z")
    team_b.tick(5)
    assert [r.task for r in team_b.told] == ["team-b/z"]
    assert len(store.untold(T0)) == 2  # a page: the five nobody declares stay untold


def test_a_run_whose_job_outlives_its_crontask_is_left_with_the_row() -> None:
    store = MemoryRunStore()
    beating(store, ELSEWHERE, 0, lease=1.0)
    running(store, "default/job", ELSEWHERE)
    judge = Judge(store, outlives=lambda record: record.task == "default/job")
    judge.tick(0)
    judge.tick(60)
    assert status(store, "default/job") is RunStatus.RUNNING
    assert judge.told == []
    assert ELSEWHERE in store.beats()


def test_a_crontask_this_host_sees_alive_keeps_its_runs() -> None:
    """A stopped row is evidence, not proof: a process of this host that is still there wins."""
    store = MemoryRunStore()
    with subprocess.Popen(["sleep", "60"]) as alive:
        try:
            started = start_time(alive.pid)
            assert started is not None
            there = owner(alive.pid, started)
            beating(store, there, 0, lease=1.0)
            running(store, "default/a", there)
            judge = Judge(store)
            judge.tick(0)
            judge.tick(60)
            assert status(store, "default/a") is RunStatus.RUNNING
            assert there in store.beats()  # kept: it may beat again
        finally:
            alive.kill()


def test_an_instance_that_never_beat_is_left_alone() -> None:
    """A replica, or a crontask from before the heartbeat: nothing says that it ended."""
    store = MemoryRunStore()
    running(store, "default/a", ELSEWHERE)
    judge = Judge(store)
    judge.tick(0)
    judge.tick(LEASE_MAX_SECONDS * 2)
    assert status(store, "default/a") is RunStatus.RUNNING


@pytest.mark.parametrize("lease", [float("nan"), float("inf"), -1.0, 1e12])
def test_a_lease_that_is_no_sensible_number_is_the_longest(lease: float) -> None:
    """Any client of the store may write a row: it cannot keep its runs for ever, nor have
    them ended at once."""
    store = MemoryRunStore()
    beating(store, ELSEWHERE, 0, lease=lease)
    running(store, "default/a", ELSEWHERE)
    judge = Judge(store)
    judge.tick(0)
    judge.tick(LEASE_MAX_SECONDS)
    assert status(store, "default/a") is RunStatus.RUNNING
    judge.tick(1)
    assert status(store, "default/a") is RunStatus.INTERRUPTED


def test_a_store_that_does_not_answer_is_said_once_and_a_lapse_after_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Flaky()
    judge = Judge(store)
    judge.tick(0)
    store.down = True
    with caplog.at_level(logging.INFO, logger="crontask"):
        for _ in range(3):
            judge.tick(LEASE_SECONDS / 2)
        store.down = False
        judge.tick(0)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "heartbeat: the run store did not answer; will try again",
        "heartbeat: the run store answers again",
        "heartbeat: this crontask's beat had lapsed; a crontask sharing the store may have "
        "marked its runs interrupted meanwhile",
    ]


def test_the_component_beats_until_stopped_then_removes_its_row() -> None:
    store = MemoryRunStore()
    beat = Heartbeat(store, instance_id(), call=now_call, interval=0.01)

    async def main() -> None:
        stop, ready = asyncio.Event(), asyncio.Event()
        component = asyncio.create_task(beat.run(ready.set, stop))
        await asyncio.wait_for(ready.wait(), 5)
        assert store.beats().keys() == {beat.me}  # beat once before it said it was ready
        stop.set()
        await asyncio.wait_for(component, 5)
        assert store.beats() == {}

    asyncio.run(main())


def test_the_clock_in_the_row_is_never_compared_with_the_judges() -> None:
    """A crontask whose clock runs an hour behind (or ahead) is judged as any other."""
    store = MemoryRunStore()
    running(store, "default/a", ELSEWHERE)
    judge = Judge(store)
    for second in range(0, 100, 5):
        store.beat(
            ELSEWHERE, LEASE_SECONDS, datetime(2001, 1, 1, tzinfo=UTC) + timedelta(seconds=second)
        )
        judge.tick(5)
    assert status(store, "default/a") is RunStatus.RUNNING


class FlakyReads(MemoryRunStore):
    """One read of the beats in six fails (a statement timeout now and then)."""

    reads = 0

    def beats(self) -> dict[str, tuple[str, float]]:
        self.reads += 1
        if self.reads % 6 == 0:
            raise StoreUnavailable("timeout")
        return super().beats()


def test_a_read_that_fails_now_and_then_only_delays_the_judgement() -> None:
    store = FlakyReads()
    beating(store, ELSEWHERE, 0)
    running(store, "default/a", ELSEWHERE)
    judge = Judge(store)
    for _ in range(int(LEASE_SECONDS / 5) + 3):  # a lease, and what the failed reads cost
        judge.tick(5)
    assert status(store, "default/a") is RunStatus.RUNNING  # not yet: one read failed
    for _ in range(3):
        judge.tick(5)
    assert status(store, "default/a") is RunStatus.INTERRUPTED


class HalfwayFailing(MemoryRunStore):
    """The second marking of a sweep fails (a failover between two statements)."""

    fail = True

    def mark_interrupted(
        self,
        owners: Collection[str],
        now: datetime,
        *,
        keep: Collection[str] = (),
        note: str = "",
    ) -> list[RunRecord]:
        if note and self.fail:
            self.fail = False
            raise StoreUnavailable("failover")
        return super().mark_interrupted(owners, now, keep=keep, note=note)


def test_a_sweep_that_stops_halfway_tells_what_it_marked_and_the_next_goes_on() -> None:
    store = HalfwayFailing()
    beating(store, ELSEWHERE, 0)
    running(store, "default/mine", ELSEWHERE)
    running(store, "team-b/theirs", ELSEWHERE)
    judge = Judge(store, declares=lambda key: key == "default/mine")
    judge.tick(0)
    judge.tick(LEASE_SECONDS + 1)
    assert [r.task for r in judge.told] == ["default/mine"]
    assert status(store, "team-b/theirs") is RunStatus.RUNNING
    judge.tick(5)
    assert status(store, "team-b/theirs") is RunStatus.INTERRUPTED
    assert [r.task for r in judge.told] == ["default/mine"]
    assert ELSEWHERE not in store.beats()


def test_a_replica_judges_the_rows_without_one_of_its_own() -> None:
    store = MemoryRunStore()
    beating(store, ELSEWHERE, 0)
    running(store, "default/a", ELSEWHERE)
    judge = Judge(store)
    judge.heartbeat.beating = False
    judge.tick(0)
    judge.tick(LEASE_SECONDS + 1)
    assert status(store, "default/a") is RunStatus.INTERRUPTED
    assert judge.heartbeat.me not in store.beats()


def test_a_run_marked_untold_is_told_though_the_row_stays_for_a_job() -> None:
    """The row of a dead crontask stays while a Job's run outlives it: the crontask that
    declares the other task looks for it when it judges the row stopped itself."""
    store = MemoryRunStore()
    beating(store, ELSEWHERE, 0)
    running(store, "team-b/theirs", ELSEWHERE)
    running(store, "default/job", ELSEWHERE)

    def job(record: RunRecord) -> bool:
        return record.task == "default/job"

    other = Judge(store, outlives=job, declares=lambda key: key == "default/job")
    team_b = Judge(store, outlives=job, declares=lambda key: key == "team-b/theirs")
    other.tick(0)
    team_b.tick(0)
    other.tick(LEASE_SECONDS + 1)
    assert status(store, "team-b/theirs") is RunStatus.INTERRUPTED
    assert ELSEWHERE in store.beats()
    team_b.tick(LEASE_SECONDS + 4)
    assert [r.task for r in team_b.told] == ["team-b/theirs"]
    assert status(store, "default/job") is RunStatus.RUNNING


class SecondPageFails(MemoryRunStore):
    """The read of a second page of untold runs fails once, when armed (a failover between
    two reads)."""

    fail = False

    def untold(
        self, since: datetime, after: tuple[datetime, str, int] | None = None
    ) -> list[RunRecord]:
        if after is not None and self.fail:
            self.fail = False
            raise StoreUnavailable("failover")
        return super().untold(since, after)


def test_runs_taken_before_a_read_failed_are_told_and_the_next_look_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A taken run no longer says nobody told of it: it must not be dropped with the look."""
    monkeypatch.setattr("reconciler.store.memory.UNTOLD_MAX", 2)
    monkeypatch.setattr("reconciler.controller.heartbeat.UNTOLD_MAX", 2)
    store = SecondPageFails()
    beating(store, ELSEWHERE, 0)
    for name in ("a", "b", "c"):
        running(store, f"team-b/{name}", ELSEWHERE)
    other = Judge(store, declares=lambda key: False)
    other.tick(0)
    other.tick(LEASE_SECONDS + 1)
    team_b = Judge(store, declares=lambda key: key.startswith("team-b/"))
    store.fail = True
    team_b.tick(5)
    assert [r.task for r in team_b.told] == ["team-b/a", "team-b/b"]
    team_b.tick(5)
    assert [r.task for r in team_b.told] == ["team-b/a", "team-b/b", "team-b/c"]
