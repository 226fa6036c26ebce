"""After a restart, the notifier reads a task's past back (``controller.wiring._recent_runs``)
as far as it needs, however many records say nothing of how the task does. A task that fails
(told), whose next run then hangs under Forbid, piles up a skipped slot every second until
crontask is stopped (the hung run: ``interrupted``, ``Shutdown``); restarted with the task
mended, its first success says ``recovered``, failing since the first failure. Read back a
page of 20 at a time, five pages at most, 100 skipped slots, or a page ending right after the
run the shutdown cut short, hid the failure, and nothing was sent. The store is real (SQLite
file; PostgreSQL too when there is one), the receiver a real HTTP server, and once the real
program on a pre-filled state directory."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.controller.wiring import _recent_runs
from reconciler.core.runs import RunRecord, RunStatus, Trigger
from reconciler.core.status import SHUTDOWN_REASON
from reconciler.store import RunStore, open_store, sqlite_url
from reconciler.store.base import RunQuery
from reconciler.store.merged import newest_first
from tests.e2e.conftest import Crontask
from tests.e2e.test_run import task
from tests.notify.receiver import receiving
from tests.notify.test_notifier import SECRET, T0, finished, running
from tests.notify.test_notify_recovered_after_restart import considered, ended, process
from tests.store.conftest import pg_admin, pg_url  # noqa: F401 (fixtures: PostgreSQL)

KEY = "default/t"
HUNG = T0 - timedelta(minutes=3)  # the slot of the run that hung


def record(status: RunStatus, at: datetime, *, key: str = KEY, **fields: Any) -> RunRecord:
    return dataclasses.replace(finished(status, at, key=key), **fields)


def skipped(at: datetime, key: str = KEY) -> RunRecord:
    return record(RunStatus.SKIPPED, at, key=key, started_at=None, reason="ConcurrencyForbid")


def hung_after_failures(
    failures: int, skips: int, hung: datetime = HUNG, key: str = KEY
) -> list[RunRecord]:
    """A success, then ``failures`` failed runs a minute apart (the first told), a run that
    hung until the shutdown cut it short, and ``skips`` slots skipped meanwhile."""
    first = hung - timedelta(minutes=failures)
    return [
        record(RunStatus.SUCCEEDED, first - timedelta(minutes=1), key=key),
        *(
            record(RunStatus.FAILED, first + timedelta(minutes=i), key=key, reason="NonZeroExit")
            for i in range(failures)
        ),
        record(RunStatus.INTERRUPTED, hung, key=key, reason=SHUTDOWN_REASON, exit_code=None),
        *(skipped(hung + timedelta(seconds=1 + i), key) for i in range(skips)),
    ]


def first_failure_end(past: list[RunRecord]) -> str:
    end = past[1].finished_at
    assert end is not None
    return end.isoformat()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunStore]:
    url = sqlite_url(tmp_path) if request.param == "sqlite" else request.getfixturevalue("pg_url")
    opened = open_store(url, writer=True)
    yield opened
    opened.close()


def after_restart(
    tmp_path: Path, store: RunStore, outcomes: list[RunStatus]
) -> list[dict[str, Any]]:
    """The messages a restarted crontask's notifier sends as runs end with ``outcomes``, a
    second apart, the task's past read back from ``store``."""
    with receiving(SECRET) as receiver:
        notifier = process(tmp_path, store, receiver)

        async def body() -> None:
            for second, status in enumerate(outcomes):
                ended(notifier, store, finished(status, T0 + timedelta(seconds=second)))
            await considered(notifier, len(outcomes))

        running(notifier, body)  # stopping delivers what is queued
    return [dict(r.json) for r in receiver.received]


@pytest.mark.parametrize(
    "skips",
    [
        0,
        19,  # the newest page of 20 ends with the run the shutdown cut short
        150,  # more than five pages of them
    ],
)
def test_the_recovery_of_a_told_failure_is_sent_past_the_slots_a_hung_run_skipped(
    tmp_path: Path, store: RunStore, skips: int
) -> None:
    past = hung_after_failures(2, skips)
    store.save_many(past)
    sent = after_restart(tmp_path, store, [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED])
    assert [(m["event"], m["reminder"]) for m in sent] == [("recovered", False)]
    assert sent[0]["failingSince"] == first_failure_end(past)


def test_failing_since_is_the_first_failure_of_a_long_streak(
    tmp_path: Path, store: RunStore
) -> None:
    """25 failed runs kept (failedRunsHistoryLimit above 20): the first is on a second page."""
    past = hung_after_failures(25, 3)
    store.save_many(past)
    sent = after_restart(tmp_path, store, [RunStatus.SUCCEEDED])
    assert [m["event"] for m in sent] == ["recovered"]
    assert sent[0]["failingSince"] == first_failure_end(past)


def test_the_read_back_stops_once_the_streak_is_read(store: RunStore) -> None:
    """Past the first page, the store filters out the skipped slots; the read stops past the
    success before the streak (and one run more: see ``notify_history.Reading``), not at the
    start of history."""
    older = [record(RunStatus.SUCCEEDED, HUNG - timedelta(hours=2, minutes=i)) for i in range(5)]
    store.save_many([*older, *hung_after_failures(2, 150)])
    read = _recent_runs(store, KEY)
    statuses = [r.status for r in read]
    assert statuses.count(RunStatus.SKIPPED) == 20  # the first page only
    assert statuses[20:] == [
        RunStatus.INTERRUPTED,
        RunStatus.FAILED,
        RunStatus.FAILED,
        RunStatus.SUCCEEDED,
        RunStatus.SUCCEEDED,
    ]


def test_records_of_several_kinds_are_merged_newest_first(store: RunStore) -> None:
    retried = record(RunStatus.FAILED, HUNG, reason="NonZeroExit")
    past = [
        *hung_after_failures(3, 40),
        # The run that hung had a retry waiting that the shutdown abandoned, and a run
        # before it was retried: both attempts of each come, the newest first.
        record(RunStatus.INTERRUPTED, HUNG, attempt=2, trigger=Trigger.RETRY, reason="x"),
        record(RunStatus.SKIPPED, HUNG - timedelta(minutes=1), attempt=2, trigger=Trigger.RETRY),
    ]
    store.save_many(past)
    kinds: list[tuple[RunStatus, Trigger | None]] = [
        (RunStatus.FAILED, None),
        (RunStatus.INTERRUPTED, None),
        (RunStatus.SKIPPED, Trigger.RETRY),
    ]
    merged = list(newest_first(store, KEY, kinds, page=2))
    everything = store.query(RunQuery(task=KEY, limit=1000)).items
    wanted = [
        r
        for r in everything
        if r.status in (RunStatus.FAILED, RunStatus.INTERRUPTED)
        or (r.status is RunStatus.SKIPPED and r.trigger is Trigger.RETRY)
    ]
    assert [(r.id, r.attempt) for r in merged] == [(r.id, r.attempt) for r in wanted]
    assert retried.id in {r.id for r in merged}
    after = list(newest_first(store, KEY, kinds, after=wanted[2]))
    assert [(r.id, r.attempt) for r in after] == [(r.id, r.attempt) for r in wanted[3:]]


@pytest.mark.e2e
def test_the_restarted_program_says_recovered_past_the_skipped_slots(
    tmp_path: Path, started: Callable[[], Crontask]
) -> None:
    """The state directory as ``crontask run`` left it when stopped (SIGTERM) after 150 s of
    a hung run's skipped slots; started again with the task mended: ``recovered``."""
    key = "default/hangy"
    now = datetime.now(UTC).replace(microsecond=0)
    past = hung_after_failures(2, 150, hung=now - timedelta(seconds=155), key=key)
    seeded = open_store(sqlite_url(tmp_path / "state"), writer=True)
    try:
        seeded.save_many(past)
    finally:
        seeded.close()
    with receiving(SECRET) as receiver:
        app = started()
        (tmp_path / "secret").write_bytes(SECRET)
        (tmp_path / "hook-url").write_text(receiver.url)
        (tmp_path / "notifications.yaml").write_text(
            "receivers:\n"
            "  - {name: hook, type: generic-hmac, urlFile: hook-url, secretFile: secret}\n"
            "routes:\n"
            "  - {receiver: hook, events: [failed, recovered]}\n"
        )
        (app.tasks / "hangy.yaml").write_text(task("hangy", ["true"], concurrencyPolicy="Forbid"))
        app.start()
        received = receiver.wait_for(1)
        app.stop()
    assert [(r.json["event"], r.json["task"]["key"]) for r in received] == [("recovered", key)]
    assert received[0].json["failingSince"] == first_failure_end(past)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Callable[[], Crontask]]:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    apps: list[Crontask] = []

    def make() -> Crontask:
        app = Crontask(tmp_path, tasks, ["--notifications", str(tmp_path / "notifications.yaml")])
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.stop()
