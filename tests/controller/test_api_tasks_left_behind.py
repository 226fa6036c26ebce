"""A crontask that ran without ``--ha`` kept the tasks created through its API under
``<state-dir>/api-tasks/``; restarted with ``--ha`` (joining replicas, the upgrade the README
describes) it reads the API's tasks from the shared run store instead, and those tasks were
gone without a word: not scheduled, not listed, nothing logged. Now the start says which tasks
that folder holds and that they are not read."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from reconciler.controller import wiring
from reconciler.controller.options import HaOptions, Options
from reconciler.sources.apifiles import ApiTaskFiles

URL = "postgresql+psycopg://crontask@127.0.0.1:1/never-connected"
TEXT = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"
    "metadata: {{name: {name}, namespace: ops}}\n"
    "spec:\n  schedule: '0 6 * * *'\n  command: {{args: ['true']}}\n"
)


def _said(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "not read with --ha" in r.getMessage()]


def _stored(state: Path, *names: str) -> None:
    files = ApiTaskFiles(state / "api-tasks")
    for name in names:
        files.write(f"ops/{name}", TEXT.format(name=name))


def test_the_tasks_a_single_crontask_kept_are_said_not_read_with_ha(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _stored(tmp_path, "report", "backup")
    with caplog.at_level(logging.WARNING):
        wiring.sources(Options(state_dir=tmp_path, db_url=URL, ha=HaOptions()), None, None, None)
    (said,) = _said(caplog)
    fields = said.__dict__["fields"]
    assert fields["tasks"] == "ops/backup,ops/report"
    assert fields["count"] == 2
    assert str(tmp_path / "api-tasks") in said.getMessage() + str(fields)


def test_many_are_counted_and_a_few_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _stored(tmp_path, *(f"t{i:02d}" for i in range(25)))
    with caplog.at_level(logging.WARNING):
        wiring.sources(Options(state_dir=tmp_path, db_url=URL, ha=HaOptions()), None, None, None)
    (said,) = _said(caplog)
    fields = said.__dict__["fields"]
    assert fields["count"] == 25
    assert fields["tasks"].split(",")[:2] == ["ops/t00", "ops/t01"]
    assert len(fields["tasks"].split(",")) == 10


@pytest.mark.parametrize("ha", [False, True])
def test_nothing_is_said_when_nothing_is_left(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, ha: bool
) -> None:
    if not ha:
        _stored(tmp_path, "report")  # read, without --ha
    (tmp_path / "api-tasks").mkdir(exist_ok=True)
    with caplog.at_level(logging.WARNING):
        options = Options(state_dir=tmp_path, db_url=URL, ha=HaOptions() if ha else None)
        wiring.sources(options, None, None, None)
    assert not _said(caplog)
