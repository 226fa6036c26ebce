"""A run page shows its newest attempt's output, and the earlier attempts' only behind a link:
a run of 101 attempts of 64 KiB each is a page of well under 1 MiB (it was 26 MiB, fetched
again every 2 s while the run went on), and while it goes on the page carries no output of
an attempt that is over. In each store: the earlier attempts are read without their output,
by the run's task and slot."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from html import escape
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from reconciler.core.runs import RunRecord, RunStatus, Trigger
from reconciler.store import RunStore, open_store, sqlite_url
from reconciler.web.views import readable_output
from tests.api.conftest import TestClient
from tests.api.fakes import T0, FakeRuntime, record

KEY = "ops/flaky"
AT = T0 + timedelta(hours=3)
OUTPUT = "<" * (64 * 1024)  # the most a stored output holds, four times that escaped
ATTEMPTS = 101  # a retry limit of 100, the largest there is
PG_ENV = "CRONTASK_TEST_POSTGRES_URL"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose connections see only a fresh schema (as tests/store/conftest.py makes)."""
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need a server: set {PG_ENV}")
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    schema = f"crontask_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    yield scoped.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, runtime: FakeRuntime
) -> Iterator[RunStore]:
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = sqlite_url(tmp_path / "state")  # a real file
    else:
        url = request.getfixturevalue("pg_url")
    opened = open_store(url, writer=True)
    runtime._store = opened  # type: ignore[assignment]  # the page reads this one, any kind
    yield opened
    opened.close()


def attempt(n: int, status: RunStatus, output: str) -> RunRecord:
    first = record(KEY, AT, status, attempt=n, output=output)
    if n == 1:
        return first
    return dataclasses.replace(first, trigger=Trigger.RETRY, message=f"attempt {n}: exit 1")


def claim_run(store: RunStore, newest: RunStatus) -> str:
    for n in range(1, ATTEMPTS):
        store.claim(attempt(n, RunStatus.FAILED, OUTPUT))
    last = attempt(ATTEMPTS, newest, OUTPUT if newest.finished else "")
    store.claim(last)
    return last.id


def live_of(html: str) -> str:
    return html.split('<div id="live"')[1]


def test_a_run_of_many_large_attempts_shows_the_newest_output_in_a_bounded_page(
    store: RunStore, page: TestClient
) -> None:
    run_id = claim_run(store, RunStatus.FAILED)
    response = page.get(f"/runs/{run_id}")
    assert response.status_code == 200
    html = response.text
    assert len(response.content) < 1024 * 1024, len(response.content)
    # The newest attempt's output, whole; the others' behind a link each, with their status.
    assert html.count('<pre class="output">') == 1
    shown = html.split('<pre class="output">')[1].split("</pre>")[0]
    assert shown == escape(readable_output(OUTPUT), quote=False)
    assert f"Attempt {ATTEMPTS} " in html
    for n in range(1, ATTEMPTS):
        assert f'href="/runs/{run_id}/output?attempt={n}"' in html
        assert f'<tr data-attempt="{n}">' in html
    assert "data-refresh" not in html  # over: the page does not refresh
    assert "attempt 2: exit 1" in html
    assert page.get(f"/runs/{run_id}/output?attempt=1").text == OUTPUT


def test_while_a_run_goes_on_its_refresh_carries_no_finished_output(
    store: RunStore, page: TestClient
) -> None:
    run_id = claim_run(store, RunStatus.RUNNING)
    response = page.get(f"/runs/{run_id}", headers={"X-Crontask-Refresh": "1"})
    html = response.text
    live = live_of(html)
    assert live.startswith(' data-refresh="2"')
    assert "&lt;" not in html  # none of the 100 outputs of 64 KiB that are over
    assert len(response.content) < 128 * 1024, len(response.content)
    assert f'<tr data-attempt="{ATTEMPTS - 1}">' in live  # the earlier attempts' status
    assert 'class="status running"' in live.split('<section class="earlier">')[0]
