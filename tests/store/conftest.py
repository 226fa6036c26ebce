"""Fixtures that hand the contract suite each store implementation in turn.

``store_url`` is parametrized over ``memory``, ``sqlite`` (a real file under ``tmp_path``) and
``postgres``. PostgreSQL runs only when ``CRONTASK_TEST_POSTGRES_URL`` names a database the tests
may create schemas in; every test gets a fresh schema (``search_path`` set through the URL's
``options``), dropped afterwards, so tests are isolated and can run against a shared server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from reconciler.store import RunStore, open_store, sqlite_url

PG_ENV = "CRONTASK_TEST_POSTGRES_URL"
PG_SKIP = (
    f"PostgreSQL tests need a server: set {PG_ENV}="
    "postgresql+psycopg://USER:PASS@127.0.0.1:5432/DB; .ci/run does this"
)

_POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(PG_SKIP)
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture
def pg_url(pg_admin: Engine) -> Iterator[str]:
    """A URL whose connections see only a fresh, empty schema."""
    schema = f"crontask_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(os.environ[PG_ENV]).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


def _url_for(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return sqlite_url(tmp_path / "state")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(params=["memory", "sqlite", _POSTGRES])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every implementation (``memory://`` opens a fresh memory store each time)."""
    return _url_for(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", _POSTGRES])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The SQL back ends only: a database that several store objects/processes can share."""
    return _url_for(request.param, request, tmp_path)


@pytest.fixture
def open_many() -> Iterator[Callable[..., RunStore]]:
    """``open_store`` whose stores are closed at teardown; opened as ``crontask run`` opens
    its store (``writer``) unless told otherwise."""
    opened: list[RunStore] = []

    def _open(url: str, *, writer: bool = True) -> RunStore:
        store = open_store(url, writer=writer)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


@pytest.fixture
def store(store_url: str, open_many: Callable[[str], RunStore]) -> RunStore:
    return open_many(store_url)


@pytest.fixture
def sql_store(sql_url: str, open_many: Callable[[str], RunStore]) -> RunStore:
    return open_many(sql_url)
