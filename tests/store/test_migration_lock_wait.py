"""On PostgreSQL, a migration that alters a table another session holds (a ``pg_dump``, an open
``psql`` transaction) waits for it at most ``LOCK_WAIT`` a try, and tries again: statements of
the older replicas on that table (their membership renewals) never queue behind it for
longer, so they keep renewing and starting runs during a rolling update. The sessions that
hold the tables are named."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from reconciler.store import migrations
from reconciler.store.sql import create_engine
from tests.helpers import wait_for

pytestmark = pytest.mark.postgres


class _Said(logging.Handler):
    """The store's log records, as they come, with an event per message seen."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def said(self, message: str) -> list[logging.LogRecord]:
        return [r for r in self.records if r.getMessage() == message]


@pytest.fixture
def said() -> Iterator[_Said]:
    handler = _Said()
    logger = logging.getLogger("crontask.store")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_a_migration_waiting_for_a_table_lets_other_sessions_use_it(
    pg_url: str, said: _Said, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migrations, "LOCK_RETRY_FIRST", 0.05)
    monkeypatch.setattr(migrations, "LOCK_RETRY_MOST", 0.2)
    engine = create_engine(pg_url)
    dump = make_url(pg_url).update_query_dict({"application_name": "nightly-dump"})
    reader = sa.create_engine(dump)
    renewer = sa.create_engine(pg_url)
    with engine.connect() as conn, conn.begin():
        migrations.upgrade(conn, "0006")  # as 0.3.0 left it
    holding = reader.connect()
    holding.begin()
    holding.execute(sa.text("SELECT count(*) FROM members"))  # a reader's lock, kept
    done: list[BaseException | None] = []

    def migrate() -> None:
        try:
            migrations.migrate(engine)
            done.append(None)
        except BaseException as err:  # handed to the test
            done.append(err)

    thread = threading.Thread(target=migrate)
    thread.start()
    try:
        waits = "run store schema upgrade waits: other sessions hold tables it changes"
        wait_for("the migration to wait", lambda: said.said(waits))

        # What an older replica's renewal does meanwhile: it is not queued behind the ALTER
        # for longer than one try (without the bound it waited as long as the reader held).
        with renewer.connect() as conn, conn.begin():
            conn.execute(sa.text("SET LOCAL lock_timeout = '20s'"))
            conn.execute(sa.text("UPDATE members SET owned = 0"))

        fields = said.said(waits)[0].__dict__["fields"]
        assert "nightly-dump" in fields["sessions"]
        assert not done  # still waiting for the reader
        holding.close()  # its transaction ends: the migration takes the table
        thread.join(timeout=60)
        assert done == [None]
        with engine.connect() as conn:
            assert migrations.current_revision(conn) == migrations.HEAD
        assert said.said("run store schema upgraded")
    finally:
        holding.close()  # so that a migration still waiting ends, whatever failed
        thread.join(timeout=60)
        for each in (engine, reader, renewer):
            each.dispose()
