"""The RunStore contract, run against every implementation (see ``conftest.store_url``).

Anything a caller may rely on is asserted here, so that the memory store stays a faithful
stand-in for the SQL one in other components' tests.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest

from reconciler.core.runs import (
    PROCESS_DIED,
    ContainerResult,
    JobDetails,
    LastOutcomes,
    RunRecord,
    RunStatus,
    Trigger,
    run_id,
)
from reconciler.store import (
    DuplicateRun,
    RunPage,
    RunQuery,
    RunStore,
    StoreUnavailable,
)
from reconciler.store.query import Cursor

from . import _race
from ._records import T0, everything, newest_first, rec, reference_prune, sort_key, walk

CEST = timezone(timedelta(hours=2))


def assert_utc(record: RunRecord) -> None:
    for name in ("scheduled_at", "started_at", "finished_at"):
        value = getattr(record, name)
        assert value is None or value.utcoffset() == timedelta(0), (name, value)
        assert value is None or value.tzinfo is UTC, (name, value.tzinfo)


def test_is_a_run_store(store: RunStore) -> None:
    assert isinstance(store, RunStore)


# -- claim / complete / get -------------------------------------------------------------------


def test_claim_get_round_trip_keeps_every_field_in_utc(store: RunStore) -> None:
    at = datetime(2026, 11, 26, 4, 0, tzinfo=CEST)  # 02:00 UTC, given in another zone
    claimed = RunRecord(
        id=run_id("ops/nightly-backup", at),
        task="ops/nightly-backup",
        scheduled_at=at,
        trigger=Trigger.MANUAL,
        status=RunStatus.RUNNING,
        attempt=1,
        started_at=at + timedelta(microseconds=123_456),
        owner="host-a:4242:boot-1",
    )
    store.claim(claimed)

    got = store.get(claimed.id, 1)
    assert got is not None
    assert_utc(got)
    assert got == claimed  # aware datetimes compare by instant
    assert got.scheduled_at == datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
    assert got.started_at == datetime(2026, 11, 26, 2, 0, 0, 123_456, tzinfo=UTC)

    output = "é" * 10 + "x" * (64 * 1024 - 20) + "\n✓"
    finished = claimed.finish(
        RunStatus.FAILED,
        finished_at=at + timedelta(seconds=3, microseconds=1),
        exit_code=3,
        reason="NonZeroExit",
        message="exited with code 3",
        output=output,
    )
    store.complete(finished)
    got = store.get(claimed.id)
    assert got is not None
    assert_utc(got)
    assert got == finished
    assert got.output == output
    assert got.duration_ms == 2876  # 3 s minus the 0.123456 s start offset, truncated


def test_complete_overwrites_only_the_mutable_fields(store: RunStore) -> None:
    claimed = rec(status=RunStatus.RUNNING, owner="a:1:x")
    store.claim(claimed)
    store.complete(
        dataclasses.replace(
            claimed,
            task="other/task",
            scheduled_at=T0 + timedelta(days=9),
            trigger=Trigger.RETRY,
            owner="b:2:y",
            status=RunStatus.SUCCEEDED,
            started_at=T0 + timedelta(seconds=7),
            finished_at=T0 + timedelta(seconds=9),
            exit_code=0,
            reason="Completed",
            message="ok",
            output="done\n",
        )
    )
    got = store.get(claimed.id, 1)
    assert got == dataclasses.replace(
        claimed,
        status=RunStatus.SUCCEEDED,
        started_at=T0 + timedelta(seconds=7),
        finished_at=T0 + timedelta(seconds=9),
        exit_code=0,
        reason="Completed",
        message="ok",
        output="done\n",
    )


def test_complete_can_clear_optional_fields(store: RunStore) -> None:
    claimed = rec(status=RunStatus.FAILED, exit_code=1, reason="X", message="m", output="o")
    store.claim(claimed)
    cleared = dataclasses.replace(
        claimed, exit_code=None, reason=None, message=None, output="", started_at=None
    )
    store.complete(cleared)
    assert store.get(claimed.id) == cleared


def test_output_that_no_database_could_store_is_made_storable(store: RunStore) -> None:
    """Binary output (NUL bytes, undecodable bytes kept as surrogates) must not cost the record."""
    raw = b"ok\x00\xff\xfe done\n".decode("utf-8", "surrogateescape")
    store.claim(rec(status=RunStatus.RUNNING))
    store.complete(rec(status=RunStatus.FAILED, output=raw, message="bad\x00byte"))
    got = store.get(rec().id)
    assert got is not None
    assert got.output == "ok\ufffd?? done\n"
    assert got.message == "bad\ufffdbyte"


def test_complete_of_an_unknown_record_is_a_key_error(store: RunStore) -> None:
    store.claim(rec(at=0))
    with pytest.raises(KeyError):
        store.complete(rec(at=1))
    with pytest.raises(KeyError):
        store.complete(rec(at=0, attempt=2))


def test_naive_datetimes_are_refused(store: RunStore) -> None:
    naive = rec().scheduled_at.replace(tzinfo=None)
    with pytest.raises(ValueError, match="timezone-aware"):
        store.claim(dataclasses.replace(rec(), scheduled_at=naive))
    store.claim(rec())
    with pytest.raises(ValueError, match="timezone-aware"):
        store.complete(dataclasses.replace(rec(), finished_at=naive))
    with pytest.raises(ValueError, match="timezone-aware"):
        store.mark_interrupted(["x"], naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        RunQuery(since=naive)


def test_attempt_must_be_positive(store: RunStore) -> None:
    with pytest.raises(ValueError, match="attempt"):
        store.claim(rec(attempt=0))


def test_get_unknown(store: RunStore) -> None:
    assert store.get("ops.nope.20261126T020000Z") is None
    store.claim(rec())
    assert store.get(rec().id, 2) is None
    assert store.attempts("ops.nope.20261126T020000Z") == []


# -- DuplicateRun: one slot, one run ----------------------------------------------------------


def test_second_claim_of_the_same_attempt_is_a_duplicate(store: RunStore) -> None:
    first = rec(status=RunStatus.RUNNING, owner="a:1:x")
    store.claim(first)
    with pytest.raises(DuplicateRun) as info:
        store.claim(dataclasses.replace(first, owner="b:2:y", trigger=Trigger.MANUAL))
    assert (info.value.run_id, info.value.attempt) == (first.id, 1)
    assert store.get(first.id) == first  # the loser changed nothing
    store.claim(dataclasses.replace(first, attempt=2, trigger=Trigger.RETRY))  # a retry is new


def test_duplicate_across_two_store_objects_on_one_database(
    sql_url: str, open_many: Callable[[str], RunStore]
) -> None:
    """Two store objects on one database are two crontask processes sharing it."""
    one, two = open_many(sql_url), open_many(sql_url)
    one.claim(rec(owner="a:1:x"))
    with pytest.raises(DuplicateRun):
        two.claim(rec(owner="b:2:y"))
    two.claim(rec(at=1, owner="b:2:y"))
    with pytest.raises(DuplicateRun):
        one.claim(rec(at=1, owner="a:1:x"))
    assert one.get(rec(at=1).id) == two.get(rec(at=1).id) == rec(at=1, owner="b:2:y")


def test_threads_racing_for_the_same_ids_claim_each_exactly_once(store: RunStore) -> None:
    ids = 50
    threads = 8
    barrier = threading.Barrier(threads)
    won: list[list[str]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            for i in range(ids):
                try:
                    store.claim(rec(at=i, status=RunStatus.RUNNING, owner=f"t{n}"))
                except DuplicateRun:
                    continue
                won[n].append(rec(at=i).id)
        except BaseException as e:  # surfaced below; a thread cannot fail the test itself
            errors.append(e)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    assert not errors
    all_won = [i for w in won for i in w]
    assert sorted(all_won) == sorted(rec(at=i).id for i in range(ids))
    for n, w in enumerate(won):
        for i in w:
            got = store.get(i)
            assert got is not None
            assert got.owner == f"t{n}"


def _results(
    results: multiprocessing.Queue[tuple[int, list[str]]],
    procs: Sequence[multiprocessing.process.BaseProcess],
    deadline: float,
) -> Iterator[tuple[int, list[str]]]:
    """Each worker's result; a worker that died fails the test at once (its traceback is in
    the captured stderr), not at the deadline."""
    for _ in procs:
        while True:
            try:
                yield results.get(timeout=0.5)
                break
            except queue.Empty:
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                assert not dead, f"a worker exited with {dead[0]} before reporting"
                assert time.monotonic() < deadline, "the workers did not report in time"


@pytest.mark.slow
def test_processes_racing_for_the_same_ids_claim_each_exactly_once(sql_url: str) -> None:
    """Real processes (spawn, so nothing is shared but the database), opening the database
    concurrently - on a fresh database, so the schema migration races too."""
    ctx = multiprocessing.get_context("spawn")
    workers, ids = 4, 50
    barrier = ctx.Barrier(workers)
    results: multiprocessing.Queue[tuple[int, list[str]]] = ctx.Queue()
    procs = [
        ctx.Process(target=_race.claim_all, args=(sql_url, n, ids, barrier, results))
        for n in range(workers)
    ]
    for p in procs:
        p.start()
    try:
        won = dict(_results(results, procs, deadline=time.monotonic() + 90))
        for p in procs:
            p.join(timeout=30)
            assert p.exitcode == 0
    finally:  # one worker failed: the others would wait at the barrier for a minute
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    claimed = [i for w in won.values() for i in w]
    assert len(claimed) == len(set(claimed)) == ids
    assert set(claimed) == {_race.race_record(i, "").id for i in range(ids)}
    assert sum(1 for w in won.values() if w) >= 1

    from reconciler.store import open_store

    check = open_store(sql_url)
    try:
        for worker, ids_won in won.items():
            for i in ids_won:
                got = check.get(i)
                assert got is not None
                assert got.owner == f"worker-{worker}"
                assert [a.attempt for a in check.attempts(i)] == [1]
    finally:
        check.close()


# -- attempts, latest --------------------------------------------------------------------------


def test_attempts_are_ascending_and_get_defaults_to_the_latest(store: RunStore) -> None:
    third = rec(attempt=3, status=RunStatus.RUNNING, trigger=Trigger.RETRY)
    first = rec(attempt=1, status=RunStatus.FAILED, exit_code=1)
    second = rec(attempt=2, status=RunStatus.TIMED_OUT, trigger=Trigger.RETRY)
    for r in (third, first, second):  # claimed out of order on purpose
        store.claim(r)
    store.claim(rec(at=1))
    assert store.attempts(first.id) == [first, second, third]
    assert store.get(first.id) == third
    assert store.get(first.id, 2) == second


def test_latest_is_the_newest_slot_and_its_highest_attempt(store: RunStore) -> None:
    assert store.latest("ops/nightly-backup") is None
    store.claim(rec(at=5))
    store.claim(rec(at=10, status=RunStatus.FAILED))
    store.claim(rec(at=10, attempt=2, status=RunStatus.RUNNING))
    store.claim(rec(at=7, attempt=3))
    store.claim(rec("ops/other", at=20))
    assert store.latest("ops/nightly-backup") == rec(at=10, attempt=2, status=RunStatus.RUNNING)
    assert store.latest("ops/other") == rec("ops/other", at=20)
    assert store.latest("ops/none") is None


def test_claim_many_claims_each_new_record_once(store: RunStore) -> None:
    store.claim(rec(at=1))
    batch = [
        rec(at=0),
        rec(at=1),
        rec(at=2),
        rec(at=2),
        rec(at=2, attempt=2),
        rec("ops/other", at=1),
    ]
    assert store.claim_many(batch) == [True, False, True, False, True, True]
    assert store.claim_many([]) == []
    assert store.get(rec(at=2).id, 1) == rec(at=2)
    assert len(store.query(RunQuery(limit=100)).items) == 5
    # A second batch of the same records claims nothing.
    assert store.claim_many(batch) == [False] * len(batch)


def test_save_many_updates_what_exists_and_inserts_what_does_not(store: RunStore) -> None:
    claimed = rec(at=1, status=RunStatus.RUNNING, owner="a:1:x")
    store.claim(claimed)
    finished = dataclasses.replace(
        claimed,
        owner="b:2:y",  # identity and owner keep their claimed values, as with complete()
        trigger=Trigger.RETRY,
        status=RunStatus.FAILED,
        finished_at=T0 + timedelta(minutes=1, seconds=3),
        exit_code=2,
        reason="Failed",
        message="exit code 2",
        output="boom\x00\n",
    )
    unknown = rec(at=2, status=RunStatus.SUCCEEDED, exit_code=0)  # its claim never arrived
    first, last = rec(at=3, status=RunStatus.RUNNING), rec(at=3, status=RunStatus.SUCCEEDED)
    store.save_many([finished, unknown, first, last])
    store.save_many([])
    assert store.get(claimed.id, 1) == dataclasses.replace(
        finished, owner="a:1:x", trigger=Trigger.SCHEDULE, output="boom\ufffd\n"
    )
    assert store.get(unknown.id, 1) == unknown
    assert store.get(last.id, 1) == last  # a key given twice ends with its last record
    assert len(store.query(RunQuery(limit=100)).items) == 3


def test_last_slots_ignore_manual_runs(store: RunStore) -> None:
    assert store.last_slots() == {}
    store.claim(rec(at=5))
    store.claim(rec(at=10, trigger=Trigger.CATCHUP, status=RunStatus.SKIPPED))
    store.claim(rec(at=10, attempt=2, trigger=Trigger.RETRY))
    store.claim(rec(at=30, trigger=Trigger.MANUAL))
    store.claim(rec("ops/other", at=20))
    store.claim(rec("ops/manual-only", at=40, trigger=Trigger.MANUAL))
    assert store.last_slots() == {
        "ops/nightly-backup": T0 + timedelta(minutes=10),
        "ops/other": T0 + timedelta(minutes=20),
    }


def test_last_outcomes_are_the_newest_end_of_a_success_and_of_a_failure(store: RunStore) -> None:
    late = T0 + timedelta(minutes=9)
    store.save_many(
        [
            rec(at=1),
            # An older slot that ended last: the newest end counts, not the newest slot.
            rec(at=2, finished_at=late.astimezone(CEST)),
            rec(at=3),
            rec(at=4, status=RunStatus.FAILED, exit_code=1),
            rec(at=5, status=RunStatus.TIMED_OUT, exit_code=None),
            rec(at=5, attempt=2, trigger=Trigger.RETRY, status=RunStatus.RUNNING),
            rec(at=8, status=RunStatus.SKIPPED, exit_code=None),
            rec(
                "ops/interrupted",
                at=3,
                status=RunStatus.INTERRUPTED,
                exit_code=None,
                finished_at=T0 + timedelta(minutes=3, seconds=5.25),
            ),
            rec("ops/interrupted", at=4, status=RunStatus.RUNNING),
            # Ended last but never started: it has no duration, the one before gives it.
            rec("ops/interrupted", at=6, status=RunStatus.INTERRUPTED, started_at=None),
            rec("ops/only-skipped", at=1, status=RunStatus.SKIPPED, exit_code=None),
            rec("ops/not-asked", at=1),
        ]
    )
    asked = ["ops/nightly-backup", "ops/interrupted", "ops/only-skipped", "ops/never-ran"]
    found = store.last_outcomes(asked)
    end = timedelta(seconds=5)
    assert found == {
        # The duration is that of the attempt that ended last (slot 2, started at 2m01s), not
        # of the newest slot, nor of the skipped slot 8 that ended after it.
        "ops/nightly-backup": LastOutcomes(late, T0 + timedelta(minutes=5) + end, 419.0),
        "ops/interrupted": LastOutcomes(None, T0 + timedelta(minutes=6) + end, 4.25),
    }
    assert found["ops/nightly-backup"].success.tzinfo is UTC  # type: ignore[union-attr]
    assert found["ops/nightly-backup"].failure.tzinfo is UTC  # type: ignore[union-attr]
    assert store.last_outcomes([]) == {}


def test_last_outcomes_pass_over_runs_interrupted_by_crontasks_shutdown(
    store: RunStore,
) -> None:
    """A run crontask's own shutdown interrupted is no failure of the task: after a restart
    its metrics (and the alert on them) start from what the task did, not from the deploy."""

    def shut_down(task: str, at: int) -> RunRecord:
        return rec(task, at, RunStatus.INTERRUPTED, exit_code=None, reason="Shutdown")

    store.save_many(
        [
            rec(at=1),
            rec(at=2, status=RunStatus.FAILED, exit_code=1),
            shut_down("ops/nightly-backup", 3),
            rec("ops/deployed", at=1),
            shut_down("ops/deployed", 2),
            shut_down("ops/only-deployed", 1),
            rec("ops/died", at=1, status=RunStatus.INTERRUPTED, reason="ProcessDied"),
        ]
    )
    found = store.last_outcomes(
        ["ops/nightly-backup", "ops/deployed", "ops/only-deployed", "ops/died"]
    )
    end = timedelta(seconds=5)
    assert found == {
        "ops/nightly-backup": LastOutcomes(
            T0 + timedelta(minutes=1) + end, T0 + timedelta(minutes=2) + end, 4.0
        ),
        "ops/deployed": LastOutcomes(T0 + timedelta(minutes=1) + end, None, 4.0),
        # Its end is when it was found dead, not known: it has no duration
        # (test_last_duration_process_died.py).
        "ops/died": LastOutcomes(None, T0 + timedelta(minutes=1) + end, None),
    }


def test_last_outcomes_of_two_attempts_that_ended_together_take_the_longer(
    store: RunStore,
) -> None:
    together = T0 + timedelta(minutes=10)
    # Saved shorter first, so a store that kept the first it met would give 479 s.
    shorter = rec(at=2, finished_at=together)  # started at 2m01s
    longer = rec(at=1, status=RunStatus.FAILED, exit_code=1, finished_at=together)  # at 1m01s
    store.save_many([shorter, longer])
    assert store.last_outcomes(["ops/nightly-backup"]) == {
        "ops/nightly-backup": LastOutcomes(together, together, 539.0)
    }


def test_last_outcomes_pass_over_an_attempt_without_an_end(store: RunStore) -> None:
    """A finished status with no ``finished_at`` (an imported history may hold one) says
    nothing of when the task last ended, nor of how long it ran: on PostgreSQL a NULL sorts
    first when descending, and would have hidden the newest real end."""
    store.save_many(
        [
            rec(at=1, status=RunStatus.FAILED, exit_code=1),  # started 1m01s, ended 1m05s
            rec(at=5, status=RunStatus.FAILED, exit_code=1, finished_at=None),
        ]
    )
    assert store.last_outcomes(["ops/nightly-backup"]) == {
        "ops/nightly-backup": LastOutcomes(None, T0 + timedelta(minutes=1, seconds=5), 4.0)
    }


def test_last_outcomes_of_more_tasks_than_one_query_holds(store: RunStore) -> None:
    keys = [f"bulk/task-{i:04d}" for i in range(4_001)]  # the SQL store asks 2 000 per query
    store.save_many([rec(key, at=i % 7) for i, key in enumerate(keys) if i % 100 == 0])
    found = store.last_outcomes(keys + keys[:10])  # asked twice: answered once
    assert sorted(found) == keys[::100]
    assert found[keys[4_000]] == LastOutcomes(T0 + timedelta(minutes=3, seconds=5), None, 4.0)


def test_last_outcomes_of_keys_that_need_escaping(store: RunStore) -> None:
    """The SQL store passes the keys asked as one JSON array (SQLite) or array (PostgreSQL)."""
    odd = ['ops/"quoted"', "ops/back\\slash", "ops/it's", "ops/é-ü-日本", "ops/a,b]"]
    store.save_many([rec(key, at=1) for key in odd])
    assert sorted(store.last_outcomes([*odd, "ops/["])) == sorted(odd)


# -- query -------------------------------------------------------------------------------------

TASKS = ["ops/nightly-backup", "ops/report", "web/cleanup-tmp"]
STATUSES = list(RunStatus)
TRIGGERS = list(Trigger)


def _history(seed: int = 7, runs: int = 90) -> list[RunRecord]:
    """A varied history: several tasks, every status and trigger, retries, and slots sharing a
    scheduled_at across tasks (so the id tie-break matters)."""
    rnd = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    records: list[RunRecord] = []
    for n in range(runs):
        task = TASKS[n % len(TASKS)]
        at = T0 + timedelta(minutes=rnd.randrange(0, 600, 15))
        if any(r.task == task and r.scheduled_at == at for r in records):
            continue
        for attempt in range(1, rnd.choice([1, 1, 1, 2, 3]) + 1):
            records.append(
                rec(
                    task,
                    at,
                    rnd.choice(STATUSES),
                    attempt=attempt,
                    trigger=Trigger.RETRY if attempt > 1 else rnd.choice(TRIGGERS),
                )
            )
    return records


def test_query_without_filters_is_everything_newest_first(store: RunStore) -> None:
    history = _history()
    for r in history:
        store.claim(r)
    page = store.query(RunQuery(limit=1000))
    assert page.next_cursor is None
    assert page.items == newest_first(history)
    for r in page.items:
        assert_utc(r)
    assert store.query(RunQuery()).items == newest_first(history)[:50]


def test_a_query_without_output_is_the_same_page_without_it(store: RunStore) -> None:
    history = [dataclasses.replace(r, output=f"line {i}\n" * 3) for i, r in enumerate(_history())]
    for r in history:
        store.claim(r)
    full = store.query(RunQuery(limit=7))
    bare = store.query(RunQuery(limit=7, output=False))
    assert any(r.output for r in full.items)
    assert bare.items == [dataclasses.replace(r, output="") for r in full.items]
    assert bare.next_cursor == full.next_cursor


@pytest.mark.parametrize(
    "query",
    [
        RunQuery(task="ops/report"),
        RunQuery(status=RunStatus.FAILED),
        RunQuery(trigger=Trigger.MANUAL),
        RunQuery(since=T0 + timedelta(hours=3)),
        RunQuery(until=T0 + timedelta(hours=3)),
        RunQuery(since=T0 + timedelta(hours=2), until=T0 + timedelta(hours=2, minutes=45)),
        RunQuery(task="web/cleanup-tmp", status=RunStatus.SUCCEEDED),
        RunQuery(
            task="ops/nightly-backup",
            status=RunStatus.RUNNING,
            trigger=Trigger.RETRY,
            since=T0 + timedelta(hours=1),
            until=T0 + timedelta(hours=9),
        ),
        RunQuery(task="no/such-task"),
        RunQuery(since=T0 + timedelta(hours=5, minutes=30), until=T0 + timedelta(hours=5)),
    ],
    ids=lambda q: ",".join(f"{k}" for k, v in vars_of(q).items() if v is not None) or "none",
)
def test_query_filters_combine_with_and(store: RunStore, query: RunQuery) -> None:
    history = _history()
    for r in history:
        store.claim(r)
    expected = newest_first(
        [
            r
            for r in history
            if (query.task is None or r.task == query.task)
            and (query.status is None or r.status is query.status)
            and (query.trigger is None or r.trigger is query.trigger)
            and (query.since is None or r.scheduled_at >= query.since)
            and (query.until is None or r.scheduled_at < query.until)
        ]
    )
    pages = walk(store, dataclasses.replace(query, limit=4))
    assert [r for p in pages for r in p] == expected
    assert store.query(dataclasses.replace(query, limit=1000)).items == expected


def vars_of(q: RunQuery) -> dict[str, object]:
    return {f.name: getattr(q, f.name) for f in dataclasses.fields(q) if f.name != "limit"}


def test_since_and_until_accept_any_zone(store: RunStore) -> None:
    store.claim(rec(at=0))
    store.claim(rec(at=60))
    page = store.query(RunQuery(since=datetime(2026, 11, 26, 4, 30, tzinfo=CEST)))
    assert page.items == [rec(at=60)]
    page = store.query(RunQuery(until=datetime(2026, 11, 26, 4, 0, 0, 1, tzinfo=CEST)))
    assert page.items == [rec(at=0)]


@pytest.mark.parametrize("limit", [1, 3, 7, 50])
def test_cursor_pages_visit_every_record_exactly_once(store: RunStore, limit: int) -> None:
    history = _history(seed=limit)
    for r in history:
        store.claim(r)
    pages = walk(store, RunQuery(limit=limit))
    flat = [r for p in pages for r in p]
    assert flat == newest_first(history)
    assert all(len(p) == limit for p in pages[:-1])
    assert len(pages) == max(1, -(-len(history) // limit))  # no trailing empty page


def test_cursor_is_keyset_not_offset(store: RunStore) -> None:
    """Rows inserted (newer) or deleted (older pages) while paging do not shift the walk."""
    for i in range(10):
        store.claim(rec(at=i))
    first = store.query(RunQuery(limit=4))
    assert [r.scheduled_at for r in first.items] == [
        T0 + timedelta(minutes=i) for i in (9, 8, 7, 6)
    ]
    for i in range(10, 20):
        store.claim(rec(at=i))  # newer than everything: an offset cursor would repeat rows
    second = store.query(RunQuery(limit=4, cursor=first.next_cursor))
    assert [r.scheduled_at for r in second.items] == [
        T0 + timedelta(minutes=i) for i in (5, 4, 3, 2)
    ]


def test_cursor_is_opaque_text_and_malformed_cursors_are_refused(store: RunStore) -> None:
    store.claim(rec(at=0))
    store.claim(rec(at=1))
    page = store.query(RunQuery(limit=1))
    assert page.next_cursor is not None
    assert page.next_cursor.isascii()
    assert "," not in page.next_cursor  # URL-safe: no padding, no separators
    assert "=" not in page.next_cursor
    forged = [Cursor(T0, "x\0y", 1).encode(), Cursor(T0, "x\ud800", 1).encode()]
    for bad in ["nope", "", "!!!!", Cursor(T0, "x", 1).encode()[:-3], *forged]:
        with pytest.raises(ValueError, match="cursor"):
            RunQuery(cursor=bad)


@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_limit_is_bounded(limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        RunQuery(limit=limit)


def test_query_on_an_empty_store(store: RunStore) -> None:
    assert store.query(RunQuery()) == RunPage([], None)


# -- running / mark_interrupted ----------------------------------------------------------------


def test_running_and_mark_interrupted(store: RunStore) -> None:
    dead, alive = "host-a:100:boot-1", "host-b:200:boot-2"
    r1 = rec(at=1, status=RunStatus.RUNNING, owner=dead, output="partial output")
    r2 = rec("ops/report", at=0, status=RunStatus.RUNNING, owner=dead)
    r3 = rec(at=2, status=RunStatus.RUNNING, owner=alive)
    r4 = rec(at=3, status=RunStatus.RUNNING, owner=None)
    done = rec(at=0, status=RunStatus.SUCCEEDED, owner=dead)
    for r in (r1, r2, r3, r4, done):
        store.claim(r)
    assert store.running() == sorted([r1, r2, r3, r4], key=sort_key)

    now = datetime(2026, 11, 26, 5, 0, tzinfo=CEST)
    marked = store.mark_interrupted([dead, "never-seen:1:x"], now)
    assert [r.id for r in marked] == [r.id for r in sorted([r1, r2], key=sort_key)]
    for before, after in zip(sorted([r1, r2], key=sort_key), marked, strict=True):
        assert after.status is RunStatus.INTERRUPTED
        assert after.finished_at == now
        assert_utc(after)
        assert after.reason == PROCESS_DIED == "ProcessDied"
        assert after.message is not None
        assert dead in after.message
        assert after.exit_code is None
        assert (after.started_at, after.output, after.owner, after.trigger) == (
            before.started_at,
            before.output,
            before.owner,
            before.trigger,
        )
        assert store.get(after.id, after.attempt) == after

    assert store.running() == sorted([r3, r4], key=sort_key)
    assert store.get(done.id) == done
    assert store.mark_interrupted([dead], now) == []  # idempotent
    assert store.mark_interrupted([], now) == []


JOB = JobDetails(namespace="ops", name="nightly-backup-1795827600")


def test_job_details_round_trip_and_are_mutable(store: RunStore) -> None:
    claimed = rec(at=0, status=RunStatus.RUNNING, job=JOB)
    store.claim(claimed)
    assert store.get(claimed.id) == claimed
    ended = JobDetails(
        namespace="ops",
        name=JOB.name,
        uid="0b6c-uid",
        pod="nightly-backup-1795827600-x7k2p",
        node="node-1",
        containers=(
            ContainerResult("main", 137, "OOMKilled"),
            ContainerResult("sidecar", None, "ImagePullBackOff"),
        ),
        started_at=datetime(2026, 11, 26, 4, 0, 1, tzinfo=CEST),
        completed_at=None,
        log_error="pods/log: HTTP 403 Forbidden",
    )
    store.save_many([claimed.finish(RunStatus.FAILED, finished_at=T0, job=ended)])
    got = store.get(claimed.id)
    assert got is not None
    assert got.job == ended
    assert got.job.started_at is not None
    assert got.job.started_at.utcoffset() == timedelta(0)
    plain = rec("ops/report", at=0)
    store.claim(plain)
    assert store.get(plain.id) == plain  # no details: None, as given


def test_take_over_moves_a_running_attempt_to_a_new_owner(store: RunStore) -> None:
    gone, me = "host-a:1:x", "host-b:2:y"
    running = rec(at=0, status=RunStatus.RUNNING, owner=gone, job=JOB)
    finished = rec(at=1, owner=gone)
    store.claim(running)
    store.claim(finished)
    store.request_stop([running.id], "Replaced")

    taken = store.take_over(running.id, 1, me)
    assert taken == dataclasses.replace(running, owner=me)
    assert store.get(running.id) == taken
    assert store.stop_requests(me) == []  # a request to the old owner is not inherited
    assert store.mark_interrupted([gone], T0) == []  # no longer the dead owner's

    assert store.take_over(finished.id, 1, me) == finished  # finished: unchanged
    assert store.take_over("no-such-run", 1, me) is None
    assert store.take_over(running.id, 2, me) is None


def test_mark_interrupted_keeps_the_runs_it_is_told_to(store: RunStore) -> None:
    dead = "host-a:100:boot-1"
    job_run = rec(at=0, status=RunStatus.RUNNING, owner=dead, job=JOB)
    local = rec(at=1, status=RunStatus.RUNNING, owner=dead)
    store.claim(job_run)
    store.claim(local)
    marked = store.mark_interrupted([dead], T0, keep=[job_run.id])
    assert [r.id for r in marked] == [local.id]
    assert store.running() == [job_run]
    again = store.mark_interrupted([dead], T0)
    assert [(r.id, r.job) for r in again] == [(job_run.id, JOB)]  # details kept


def test_running_of_one_task(store: RunStore) -> None:
    a1 = rec(at=1, status=RunStatus.RUNNING)
    a0 = rec(at=0, status=RunStatus.RUNNING)
    other = rec("ops/report", at=0, status=RunStatus.RUNNING)
    done = rec(at=2)
    for r in (a1, a0, other, done):
        store.claim(r)
    assert store.running("ops/nightly-backup") == [a0, a1]
    assert store.running("ops/none") == []


def test_stop_requests_reach_the_owner_of_running_attempts_only(store: RunStore) -> None:
    mine, theirs = "host-a:1:x", "host-b:2:y"
    running = rec(at=0, status=RunStatus.RUNNING, owner=mine)
    retried = rec(at=1, status=RunStatus.FAILED, owner=mine)
    retry = rec(at=1, attempt=2, trigger=Trigger.RETRY, status=RunStatus.RUNNING, owner=mine)
    elsewhere = rec("ops/report", at=0, status=RunStatus.RUNNING, owner=theirs)
    finished = rec(at=2, owner=mine)
    for r in (running, retried, retry, elsewhere, finished):
        store.claim(r)
    assert store.stop_requests(mine) == []
    marked = store.request_stop([running.id, retried.id, finished.id, "no-such-run"], "Replaced")
    assert marked == 2  # the running attempts: the first run, and the retry of the second
    assert store.stop_requests(mine) == sorted(
        [(running.id, 1, "Replaced"), (retry.id, 2, "Replaced")]
    )
    assert store.stop_requests(theirs) == []
    store.complete(dataclasses.replace(running, status=RunStatus.FAILED, reason="Replaced"))
    assert store.stop_requests(mine) == [(retry.id, 2, "Replaced")]  # finished: no longer asked
    assert store.request_stop([], "Replaced") == 0


# -- prune -------------------------------------------------------------------------------------


def test_prune_keeps_the_newest_n_succeeded_and_m_failed_runs_per_task(store: RunStore) -> None:
    task = "ops/nightly-backup"
    S, F, T, X, K, R = (  # a legend for the timeline below
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.TIMED_OUT,
        RunStatus.INTERRUPTED,
        RunStatus.SKIPPED,
        RunStatus.RUNNING,
    )
    # minute -> status, oldest first
    timeline = [R, S, F, K, S, T, K, S, X, K, F, S, K, S]
    for minute, status in enumerate(timeline):
        store.claim(rec(task, minute, status))
    # a retried run: attempt 1 failed, attempt 2 succeeded -> a succeeded run, kept/deleted whole
    store.claim(rec(task, 14, F))
    store.claim(rec(task, 14, S, attempt=2, trigger=Trigger.RETRY))
    # another task, not in limits: untouched
    for minute in range(5):
        store.claim(rec("ops/other", minute, F))
    before = everything(store)

    deleted = store.prune({task: (2, 1)}, None, T0 + timedelta(days=1))

    kept = {
        (r.task, int((r.scheduled_at - T0).total_seconds() // 60), r.attempt)
        for r in everything(store)
    }
    expected = (
        {(task, 14, 1), (task, 14, 2), (task, 13, 1)}  # newest 2 succeeded runs
        | {(task, 10, 1)}  # newest failed-ish
        | {(task, 12, 1)}  # newest skipped (own bucket, failed limit)
        | {(task, 0, 1)}  # running: never deleted, not counted
        | {("ops/other", m, 1) for m in range(5)}
    )
    assert kept == expected
    assert deleted == len(before) - len(expected)
    assert store.prune({task: (2, 1)}, None, T0 + timedelta(days=1)) == 0  # idempotent


def test_prune_with_zero_limits_keeps_running_runs_and_the_newest_slot(store: RunStore) -> None:
    store.claim(rec(at=0, status=RunStatus.FAILED))
    store.claim(rec(at=0, attempt=2, status=RunStatus.RUNNING))  # a run with a running retry
    store.claim(rec(at=1, status=RunStatus.RUNNING))
    finished = [s for s in STATUSES if s.finished]
    for i in range(2, 12):
        store.claim(rec(at=i, status=finished[i % len(finished)]))
    store.prune({"ops/nightly-backup": (0, 0)}, None, T0)
    assert {(r.scheduled_at, r.attempt) for r in everything(store)} == {
        (T0, 1),
        (T0, 2),
        (T0 + timedelta(minutes=1), 1),
        (T0 + timedelta(minutes=10), 1),  # the last success
        (T0 + timedelta(minutes=11), 1),  # the mark of missed slots
    }


@pytest.mark.parametrize("limits", [(0, 0), (1, 0), (0, 1)])
def test_prune_never_moves_the_mark_of_missed_slots(
    store: RunStore, limits: tuple[int, int]
) -> None:
    """The newest slot's record is what a restart, or a replica taking the task over, counts
    missed slots from: pruned, the slot it ran would be caught up and run a second time. Manual
    runs after it are no slot, and do not stand in for it."""
    task = "ops/nightly-backup"
    store.claim(rec(task, 0, RunStatus.FAILED))
    store.claim(rec(task, 1, RunStatus.SUCCEEDED))  # the newest slot
    store.claim(rec(task, 2, RunStatus.SUCCEEDED, trigger=Trigger.MANUAL))
    store.claim(rec(task, 3, RunStatus.FAILED, trigger=Trigger.MANUAL))
    store.claim(rec("ops/other", 0, RunStatus.SKIPPED))
    store.claim(rec("ops/other", 1, RunStatus.SKIPPED, trigger=Trigger.MANUAL))
    marks = store.last_slots()
    assert marks == {task: T0 + timedelta(minutes=1), "ops/other": T0}
    store.prune({task: limits, "ops/other": limits}, None, T0 + timedelta(days=1))
    assert store.last_slots() == marks
    assert store.prune({task: limits, "ops/other": limits}, None, T0 + timedelta(days=1)) == 0


def test_prune_by_max_age_spares_running_runs(store: RunStore) -> None:
    now = T0 + timedelta(days=30)
    old, young = 0, 30 * 24 * 60 - 60  # minutes: 30 days old / 1 hour old
    store.claim(rec(at=old, status=RunStatus.SUCCEEDED))
    store.claim(rec("ops/other", at=old, status=RunStatus.FAILED))
    store.claim(rec("ops/other", at=old, status=RunStatus.FAILED, attempt=2))
    store.claim(rec("ops/stuck", at=old, status=RunStatus.FAILED))
    store.claim(rec("ops/stuck", at=old, status=RunStatus.RUNNING, attempt=2))
    store.claim(rec("ops/hung", at=old + 1, status=RunStatus.RUNNING))
    store.claim(rec(at=young, status=RunStatus.FAILED))

    store.claim(rec("ops/other", at=old + 2, status=RunStatus.SUCCEEDED))

    deleted = store.prune({}, timedelta(days=7), now)

    assert deleted == 2
    survivors = {(r.task, r.scheduled_at, r.attempt, r.status) for r in everything(store)}
    at = {minutes: T0 + timedelta(minutes=minutes) for minutes in (old, old + 1, old + 2, young)}
    assert survivors == {
        ("ops/stuck", at[old], 1, RunStatus.FAILED),  # the run has a running attempt: kept whole
        ("ops/stuck", at[old], 2, RunStatus.RUNNING),
        ("ops/hung", at[old + 1], 1, RunStatus.RUNNING),
        ("ops/nightly-backup", at[young], 1, RunStatus.FAILED),
        # Its last success, however old: the metrics' last success after a restart.
        ("ops/nightly-backup", at[old], 1, RunStatus.SUCCEEDED),
        # Its newest slot, however old: what a restart counts missed slots from.
        ("ops/other", at[old + 2], 1, RunStatus.SUCCEEDED),
    }
    assert store.prune({}, None, now) == 0


def test_prune_by_max_age_keeps_the_mark_of_missed_slots(store: RunStore) -> None:
    """A ``@monthly`` task's last run is older than the default 30 days on the eve of its next
    slot: pruned, a restart across that slot would neither run it nor record it."""
    now = T0 + timedelta(days=40)
    task = "ops/monthly"
    store.claim(rec(task, 0, RunStatus.SUCCEEDED))
    store.claim(rec(task, 10, RunStatus.FAILED))  # the newest slot
    store.claim(rec(task, 11, RunStatus.FAILED, trigger=Trigger.MANUAL))
    store.claim(rec(task, 12, RunStatus.FAILED, trigger=Trigger.MANUAL))
    store.claim(rec(task, 12, RunStatus.SUCCEEDED, attempt=2, trigger=Trigger.RETRY))
    store.claim(rec("ops/manual-only", 0, RunStatus.SUCCEEDED, trigger=Trigger.MANUAL))
    marks = store.last_slots()
    assert marks == {task: T0 + timedelta(minutes=10)}
    assert store.prune({}, timedelta(days=30), now) == 2
    assert store.last_slots() == marks
    kept = {(r.task, r.scheduled_at, r.attempt) for r in everything(store)}
    # A manual run stays manual through its retries (trigger ``retry``): no mark. But each
    # task's newest run that tells how it did stays too (``RetentionTally``): the retried
    # manual run that succeeded after the failed slot, and the other task's manual run.
    assert kept == {
        (task, T0 + timedelta(minutes=10), 1),
        (task, T0 + timedelta(minutes=12), 1),
        (task, T0 + timedelta(minutes=12), 2),
        ("ops/manual-only", T0, 1),
    }


def _manual_run_retried(store: RunStore, task: str, at: int) -> None:
    """A manual run at ``at`` whose first attempt failed and whose retry failed too."""
    store.claim(rec(task, at, RunStatus.FAILED, trigger=Trigger.MANUAL))
    store.claim(rec(task, at, RunStatus.FAILED, attempt=2, trigger=Trigger.RETRY))


def test_a_retried_manual_run_is_no_slot(store: RunStore) -> None:
    """A run's kind is its first attempt's: the retry of a manual run records ``retry``, yet
    its moment is no slot. Taken for one, a restart would count no slot missed before it (a
    task suspended past a slot, run by hand, resumed while crontask was down: no catch-up)."""
    task = "ops/nightly-backup"
    store.claim(rec(task, 0))  # the last slot that ran
    _manual_run_retried(store, task, 150)
    store.claim(rec(task, 200, trigger=Trigger.CATCHUP, status=RunStatus.FAILED, attempt=1))
    store.claim(rec(task, 200, attempt=2, trigger=Trigger.RETRY))  # a retried catch-up is one
    _manual_run_retried(store, task, 250)
    _manual_run_retried(store, "ops/manual-only", 0)
    assert store.last_slots() == {task: T0 + timedelta(minutes=200)}
    store.claim(rec("ops/other", 10))
    _manual_run_retried(store, "ops/other", 20)
    assert store.last_slots()["ops/other"] == T0 + timedelta(minutes=10)


@pytest.mark.parametrize("max_age", [None, timedelta(days=1)])
def test_prune_keeps_the_last_slot_behind_a_retried_manual_run(
    store: RunStore, max_age: timedelta | None
) -> None:
    """The mark of missed slots is the last scheduled run, not a later manual run that was
    retried: by limits (0, 0) or by age, the slot stays (and the manual run, as the task's
    newest run that tells how it did: ``RetentionTally``)."""
    task = "ops/nightly-backup"
    store.claim(rec(task, 0, RunStatus.FAILED))
    store.claim(rec(task, 1))  # the last slot that ran
    _manual_run_retried(store, task, 150)
    limits = {task: (0, 0)} if max_age is None else {}
    store.prune(limits, max_age, T0 + timedelta(days=2))
    manual = {(T0 + timedelta(minutes=150), attempt) for attempt in (1, 2)}
    assert {(r.scheduled_at, r.attempt) for r in everything(store)} == {
        (T0 + timedelta(minutes=1), 1),
        *manual,
    }
    assert store.last_slots() == {task: T0 + timedelta(minutes=1)}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_prune_matches_the_reference_rules(store: RunStore, seed: int) -> None:
    """Randomised: long histories (past the range-delete boundary), both limits and max_age."""
    rnd = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    records: list[RunRecord] = []
    weights = [1, 6, 3, 1, 2, 1]  # running is rare, success common
    for task in TASKS:
        for minute in rnd.sample(range(3000), 150):
            attempts = rnd.choice([1, 1, 1, 2])
            # Some manual runs, retried too: their retries record ``retry``.
            first = rnd.choices([Trigger.SCHEDULE, Trigger.MANUAL], [5, 1])[0]
            for attempt in range(1, attempts + 1):
                status = rnd.choices(STATUSES, weights)[0]
                trigger = first if attempt == 1 else Trigger.RETRY
                records.append(rec(task, minute, status, attempt=attempt, trigger=trigger))
    for r in records:
        store.claim(r)
    limits = {TASKS[0]: (rnd.randint(0, 5), rnd.randint(0, 5)), TASKS[1]: (100, 0)}
    now = T0 + timedelta(minutes=3000)
    max_age = timedelta(minutes=rnd.randint(1000, 2500))

    deleted = store.prune(limits, max_age, now)

    expected = reference_prune(records, limits, max_age, now)
    assert sorted(map(sort_key, everything(store))) == sorted(map(sort_key, expected))
    assert deleted == len(records) - len(expected)


def test_prune_refuses_negative_limits(store: RunStore) -> None:
    with pytest.raises(ValueError, match="limits"):
        store.prune({"ops/x": (-1, 1)}, None, T0)


# -- ping / close ------------------------------------------------------------------------------


def test_ping_and_close(store: RunStore) -> None:
    store.ping()
    store.close()
    with pytest.raises(StoreUnavailable):
        store.ping()
    store.close()  # idempotent
