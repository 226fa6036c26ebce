"""A run store that is no crontask store (another application's ``runs`` table, another Alembic
revision) or a damaged one (``alembic_version`` with two rows) is one line from ``crontask run``
and ``crontask runs``, exit status 1 as for a file that is no database: no traceback, no "run
store unavailable" (which says "try later"). And the URL's password is hidden where the message
quotes it, not wherever its letters appear: a password that is a common word (``crontask``, the
test server's) garbled crontask's own words into "is not a *** run store"."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from reconciler.cli.store_errors import _hidden
from reconciler.store import open_store, sqlite_url
from tests.cli.test_state_dir import crontask, refused, run
from tests.store.conftest import pg_admin, pg_url

__all__ = ["pg_admin", "pg_url"]  # the fixtures, shared with the store suite

NOT_OURS = "is not a crontask run store, or a damaged one"
COMMON_WORD = "crontask"  # the password of CRONTASK_TEST_POSTGRES_URL's server (.ci/run)
# Another application's table of Alembic's name, of another shape: no version_num to read.
FOREIGN_VERSION_TABLE = "CREATE TABLE alembic_version (id INTEGER PRIMARY KEY, note TEXT)"
NO_VERSION_NUM = "its alembic_version table has no version_num column"


def _sqlite(db: Path, *statements: str) -> None:
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        for statement in statements:
            conn.execute(statement)


def _made(state: Path) -> Path:
    open_store(sqlite_url(state), writer=True).close()
    return state / "runs.db"


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (("DROP TABLE alembic_version",), "'runs'"),
        (("INSERT INTO alembic_version VALUES ('0005')",), "several revisions"),
        (("UPDATE alembic_version SET version_num = 'ae1027a6acf'",), "'ae1027a6acf'"),
        (("DROP TABLE alembic_version", FOREIGN_VERSION_TABLE), NO_VERSION_NUM),
    ],
    ids=[
        "runs-without-revision",
        "two-revisions",
        "another-apps-revision",
        "another-apps-alembic-version",
    ],
)
def test_run_and_runs_refuse_it_in_one_line(
    tmp_path: Path, damage: tuple[str, ...], says: str
) -> None:
    db = _made(tmp_path / "state")
    _sqlite(db, *damage)
    for done in (
        run("state", cwd=tmp_path),
        crontask("runs", "--state-dir", "state", cwd=tmp_path),
    ):
        refused(done, 1, str(db), NOT_OURS, says)


@pytest.mark.postgres
def test_a_password_that_is_a_common_word_leaves_the_message_readable(
    pg_url: str, tmp_path: Path
) -> None:
    url = make_url(pg_url)
    if url.password != COMMON_WORD:
        pytest.skip(f"the test server's password is not {COMMON_WORD!r}, a word of the messages")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE runs (id SERIAL PRIMARY KEY, payload TEXT)"))
    finally:
        engine.dispose()
    done = run("state", "--db", pg_url, cwd=tmp_path)
    said = refused(done, 1, NOT_OURS, "give crontask a database", f"{url.username}:***@")
    assert ":crontask@" not in said


@pytest.mark.postgres
def test_an_alembic_version_of_another_shape_is_refused_in_one_line_on_postgresql(
    pg_url: str, tmp_path: Path
) -> None:
    engine = sa.create_engine(pg_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(FOREIGN_VERSION_TABLE))
    finally:
        engine.dispose()
    for done in (
        run("state", "--db", pg_url, cwd=tmp_path),
        crontask("runs", "--db", pg_url, cwd=tmp_path),
    ):
        refused(done, 1, NOT_OURS, NO_VERSION_NUM)


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        (
            "this crontask does not know revision 'x'",
            "this crontask does not know revision 'x'",
        ),
        (
            "postgresql+psycopg://crontask:crontask@db/x is not a crontask run store",
            "postgresql+psycopg://crontask@db/x is not a crontask run store",  # the URL whole
        ),
        (
            "at postgresql://crontask:crontask@db:5432/x: failed",
            "at postgresql://crontask:***@db:5432/x: failed",
        ),
        ("host=db password=crontask user=crontask", "host=db password=*** user=crontask"),
    ],
)
def test_the_password_is_hidden_where_quoted(message: str, shown: str) -> None:
    assert _hidden(message, "postgresql+psycopg://crontask:crontask@db/x") == shown
