"""A crontask without ``--ha`` keeps the tasks created through its API under
``<state-dir>/api-tasks/``, replicas (``--ha``) in the shared run store. Restarted with
``--ha`` (the upgrade to replicas the README describes), or without it again (back to one
crontask on the same PostgreSQL store), it reads the other place, and the tasks of the first
were gone without a word: not scheduled, not listed, nothing logged. Now each start says which
tasks the other place holds and that they are not read."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from reconciler.controller import wiring
from reconciler.controller.options import HaOptions, Options
from reconciler.sources.apifiles import ApiTaskFiles
from reconciler.store import open_store
from reconciler.store.api_tasks import SqlApiTasks
from tests.store.conftest import pg_admin, pg_url

__all__ = ["pg_admin", "pg_url"]

NOWHERE = "postgresql+psycopg://crontask@127.0.0.1:1/never-connected"
TEXT = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"
    "metadata: {{name: {name}, namespace: ops}}\n"
    "spec:\n  schedule: '0 6 * * *'\n  command: {{args: ['true']}}\n"
)


def _said(caplog: pytest.LogCaptureFixture, unread: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if unread in r.getMessage()]


def _stored(state: Path, *names: str) -> None:
    files = ApiTaskFiles(state / "api-tasks")
    for name in names:
        files.write(f"ops/{name}", TEXT.format(name=name))


def test_the_tasks_a_single_crontask_kept_are_said_not_read_with_ha(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _stored(tmp_path, "report", "backup")
    with caplog.at_level(logging.WARNING):
        wiring.say_unread_api_tasks(Options(state_dir=tmp_path, db_url=NOWHERE, ha=HaOptions()))
    (said,) = _said(caplog, "not read with --ha")
    fields = said.__dict__["fields"]
    assert fields["tasks"] == "ops/backup,ops/report"
    assert fields["count"] == 2
    assert str(tmp_path / "api-tasks") in said.getMessage()


def test_many_are_counted_and_a_few_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _stored(tmp_path, *(f"t{i:02d}" for i in range(25)))
    with caplog.at_level(logging.WARNING):
        wiring.say_unread_api_tasks(Options(state_dir=tmp_path, db_url=NOWHERE, ha=HaOptions()))
    (said,) = _said(caplog, "not read with --ha")
    fields = said.__dict__["fields"]
    assert fields["count"] == 25
    assert fields["tasks"].split(",")[:2] == ["ops/t00", "ops/t01"]
    assert len(fields["tasks"].split(",")) == 10


def test_nothing_is_said_with_ha_when_nothing_is_left(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "api-tasks").mkdir()
    with caplog.at_level(logging.WARNING):
        wiring.say_unread_api_tasks(Options(state_dir=tmp_path, db_url=NOWHERE, ha=HaOptions()))
    assert not caplog.records


@pytest.mark.postgres
def test_the_tasks_replicas_kept_are_said_read_only_with_ha(
    tmp_path: Path, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    open_store(pg_url, writer=True).close()
    shared = SqlApiTasks.open(pg_url)
    shared.write("ops/report", TEXT.format(name="report"))
    shared.engine.dispose()
    _stored(tmp_path, "local")  # read: not said
    with caplog.at_level(logging.WARNING):
        wiring.say_unread_api_tasks(Options(state_dir=tmp_path, db_url=pg_url))
    (said,) = _said(caplog, "read only with --ha")
    assert said.__dict__["fields"]["tasks"] == "ops/report"
    assert len(caplog.records) == 1


@pytest.mark.postgres
def test_nothing_is_said_without_ha_when_the_store_holds_none(
    tmp_path: Path, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    open_store(pg_url, writer=True).close()
    with caplog.at_level(logging.WARNING):
        wiring.say_unread_api_tasks(Options(state_dir=tmp_path, db_url=pg_url))
        wiring.say_unread_api_tasks(Options(state_dir=tmp_path, db_url="sqlite:///x.db"))
    assert not caplog.records


def test_a_store_that_cannot_be_reached_says_nothing_and_does_not_fail(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        wiring.say_unread_api_tasks(Options(state_dir=tmp_path, db_url=NOWHERE))
    assert not _said(caplog, "API-owned")
