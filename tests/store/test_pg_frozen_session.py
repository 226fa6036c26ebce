"""A replica frozen inside one of its transactions (SIGSTOP, a frozen VM, a debugger), on
PostgreSQL: its locks go, so the other replicas go on.

Nothing timed such a session out: the kernel answers the TCP keepalives of a stopped process.
A replica frozen inside its exclusive claim held the task's advisory lock, and every later
claim of the task on every replica waited behind it (each slot recorded ``ConcurrencyForbid``
meanwhile); one frozen while saving a record held its row, and the marking of its running runs
``interrupted`` gave up at each renewal, so its tasks were never taken over. The store's
sessions end a transaction left idle for ``PG_IDLE_IN_TRANSACTION_TIMEOUT``: the others get
the locks, and the frozen replica, once resumed, finds its transaction gone as in any outage
(StoreUnavailable: the write is tried again, nothing is dropped), on a connection the pool
does not hand out again.

The "freeze" here is the store's own thread held just before its COMMIT (an engine ``commit``
listener), every statement of the transaction sent: what a stopped process leaves behind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection

from reconciler.core.runs import RunStatus
from reconciler.store import RunStore, sql_schema
from reconciler.store.base import StoreUnavailable
from reconciler.store.sql import SqlRunStore
from reconciler.store.sql_errors import pg_on_error, translated_errors
from reconciler.store.sql_schema import PG_IDLE_IN_TRANSACTION_TIMEOUT

from ._records import rec

pytestmark = pytest.mark.postgres

# How long the frozen thread stays frozen at most (so a broken test cannot hang), and how long
# the other replica's call may take: far beyond the idle limit, far below the hold.
HOLD_AT_MOST = 60.0
ANSWER_WITHIN = 30.0
FROZEN = "replica-a"
TASK = "ops/nightly-backup"


@dataclass
class Freezer:
    """Holds the first transaction of a store just before its COMMIT, until thawed."""

    frozen: threading.Event = field(default_factory=threading.Event)
    thawed: threading.Event = field(default_factory=threading.Event)
    armed: bool = True

    def hold(self, _conn: Connection) -> None:
        if not self.armed:
            return
        self.armed = False
        self.frozen.set()
        self.thawed.wait(HOLD_AT_MOST)


def _pg_store(url: str, open_many: Callable[[str], RunStore]) -> SqlRunStore:
    store = open_many(url)
    assert isinstance(store, SqlRunStore)
    return store


@pytest.fixture
def replicas(
    pg_url: str, open_many: Callable[[str], RunStore]
) -> Iterator[tuple[SqlRunStore, SqlRunStore, Freezer]]:
    """The frozen replica's store (its next transaction freezes), and a healthy one's."""
    frozen, healthy = _pg_store(pg_url, open_many), _pg_store(pg_url, open_many)
    freezer = Freezer()
    event.listen(frozen.engine, "commit", freezer.hold)
    yield frozen, healthy, freezer
    freezer.thawed.set()


def _freeze(
    pool: ThreadPoolExecutor, freezer: Freezer, call: Callable[[], object]
) -> Future[object]:
    """``call`` in ``pool``, once it is frozen inside its transaction."""
    done = pool.submit(call)
    assert freezer.frozen.wait(ANSWER_WITHIN), "the frozen replica's call never froze"
    return done


def _thaw_and_fail(freezer: Freezer, done: Future[object]) -> None:
    """The frozen replica resumes: its transaction is gone, an outage as any."""
    freezer.thawed.set()
    with pytest.raises(StoreUnavailable):
        done.result(timeout=ANSWER_WITHIN)


def test_sessions_end_a_transaction_left_idle(
    replicas: tuple[SqlRunStore, SqlRunStore, Freezer],
) -> None:
    frozen, _, _ = replicas
    with frozen.engine.connect() as conn:
        shown = conn.execute(sa.text("SHOW idle_in_transaction_session_timeout")).scalar_one()
    assert shown == f"{int(PG_IDLE_IN_TRANSACTION_TIMEOUT.total_seconds())}s"


def test_the_url_options_still_win(pg_url: str, open_many: Callable[[str], RunStore]) -> None:
    # The fixture's URL gives options (search_path) already: both settings are taken.
    url = sa.make_url(pg_url)
    options = f"{url.query['options']} -c idle_in_transaction_session_timeout=0"
    store = _pg_store(
        url.update_query_dict({"options": options}).render_as_string(False), open_many
    )
    with store.engine.connect() as conn:
        shown = conn.execute(sa.text("SHOW idle_in_transaction_session_timeout")).scalar_one()
        assert conn.execute(sa.text("SELECT count(*) FROM runs")).scalar_one() == 0
    assert shown == "0"


def test_a_claim_frozen_with_its_task_lock_does_not_hold_the_others_claims(
    replicas: tuple[SqlRunStore, SqlRunStore, Freezer],
) -> None:
    frozen, healthy, freezer = replicas
    mine = rec(TASK, 0, RunStatus.RUNNING, owner=FROZEN)
    theirs = rec(TASK, 1, RunStatus.RUNNING, owner="replica-b")
    with ThreadPoolExecutor(2) as pool:
        claiming = _freeze(pool, freezer, lambda: frozen.claim_exclusive([mine]))
        # The healthy replica's claim of the same task waits for the advisory lock the frozen
        # claim holds: until the server ends the frozen session, no longer.
        answer = pool.submit(healthy.claim_exclusive, [theirs])
        (got,) = answer.result(timeout=ANSWER_WITHIN)
        assert got.claimed  # the frozen claim's insert was never committed
        _thaw_and_fail(freezer, claiming)
    # The resumed replica's store works on (the ended session is not handed out again), and
    # its claim, made again, gets the answer the rows give.
    (again,) = frozen.claim_exclusive([mine])
    assert not again.claimed
    assert [r.id for r in again.running] == [theirs.id]


def test_a_save_frozen_with_its_row_does_not_hold_the_marking_of_its_runs(
    replicas: tuple[SqlRunStore, SqlRunStore, Freezer],
) -> None:
    frozen, healthy, freezer = replicas
    record = rec(TASK, 0, RunStatus.RUNNING, owner=FROZEN)
    finished = rec(TASK, 0, RunStatus.SUCCEEDED, owner=FROZEN)
    # Several records: psycopg sends a batch's rows as a pipeline (executemany), after which the
    # server did not end an idle transaction (its idle timer is not started again).
    others = [rec(TASK, n, RunStatus.SUCCEEDED, owner=FROZEN) for n in (1, 2, 3)]
    assert healthy.claim_many([record]) == [True]
    with ThreadPoolExecutor(1) as pool:
        saving = _freeze(pool, freezer, lambda: frozen.save_many([finished, *others]))
        # The housekeeping of the others, as each renewal does it: a marking that waited its
        # lock wait in vain is tried again at the next renewal.
        deadline = time.monotonic() + ANSWER_WITHIN
        while True:
            try:
                marked = healthy.mark_interrupted([FROZEN], record.scheduled_at)
                break
            except StoreUnavailable:
                assert time.monotonic() < deadline, "the frozen save's row lock never went"
        assert [(r.id, r.status) for r in marked] == [(record.id, RunStatus.INTERRUPTED)]
        _thaw_and_fail(freezer, saving)
    # The save failed as in an outage, so the recorder writes it again; it goes through.
    frozen.save_many([finished, *others])
    assert frozen.get(record.id) == finished


@pytest.mark.parametrize(
    "ended",
    [
        psycopg.errors.IdleInTransactionSessionTimeout,
        psycopg.errors.IdleSessionTimeout,
    ],
)
def test_a_session_the_server_ended_is_an_outage_and_its_connection_is_not_reused(
    ended: type[psycopg.Error],
) -> None:
    # psycopg raises 25P03 as an InternalError: an outage only if SQLAlchemy happened to see the
    # socket closed already (connection_invalidated); else the record was dropped.
    error = exc.InternalError("COMMIT", {}, ended("terminating connection"))
    with pytest.raises(StoreUnavailable), translated_errors():
        raise error

    @dataclass
    class Context:
        original_exception: BaseException | None
        is_disconnect: bool = False

    context = Context(error.orig)
    pg_on_error(context)  # type: ignore[arg-type]
    assert context.is_disconnect


def test_a_server_that_refuses_the_setting_still_opens_the_store(
    pg_url: str,
    open_many: Callable[[str], RunStore],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A hardened server (pg_settings hidden, set_config revoked): crontask runs without the
    limit, and says so once."""
    monkeypatch.setattr(sql_schema, "_PG_IDLE_LIMIT", "SELECT * FROM no_such_table_here")
    monkeypatch.setattr(sql_schema, "_idle_limit_refused", [])
    store = _pg_store(pg_url, open_many)
    store.claim(rec(status=RunStatus.RUNNING))
    assert store.get(rec().id) is not None
    said = [r for r in caplog.records if "idle_in_transaction_session_timeout" in r.getMessage()]
    assert len(said) == 1
    assert said[0].levelname == "WARNING"
