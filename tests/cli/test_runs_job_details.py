"""``crontask runs --id`` shows a job run's Kubernetes Job (name, pod, node, each container's
exit code and reason), read from the store or from the API; read from the store, ``--json``
has the ``job`` key in the API's spelling, so that both say the same."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.api.models import RunAttemptOut
from reconciler.core.runs import ContainerResult, JobDetails, RunRecord, RunStatus, Trigger, run_id
from reconciler.store import open_store, sqlite_url
from tests.cli.hostile import HostileServer, cli

AT = datetime(2026, 12, 3, 1, tzinfo=UTC)
KEY = "ops/etl"
JOB = JobDetails(
    namespace="ops",
    name="etl-abc",
    uid="u-1",
    pod="etl-abc-x7",
    node="node-3",
    containers=(
        ContainerResult(name="main", exit_code=137, reason="OOMKilled"),
        ContainerResult(name="sidecar", exit_code=0, reason="Completed"),
    ),
    started_at=AT + timedelta(seconds=1),
    log_error="pod gone",
)
RECORD = RunRecord(
    id=run_id(KEY, AT),
    task=KEY,
    scheduled_at=AT,
    trigger=Trigger.SCHEDULE,
    status=RunStatus.FAILED,
    started_at=AT,
    finished_at=AT + timedelta(seconds=9),
    exit_code=137,
    reason="NonZeroExit",
    message="Job failed",
    output="killed",
    job=JOB,
)


def stored(tmp_path: Path, *records: RunRecord) -> Path:
    state = tmp_path / "state"
    store = open_store(sqlite_url(state), writer=True)
    try:
        store.save_many(list(records))
    finally:
        store.close()
    return state


def test_the_store_json_has_the_apis_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = stored(tmp_path, RECORD)
    assert cli("runs", "--state-dir", str(state), "--id", RECORD.id, "--json") == 0
    [attempt] = json.loads(capsys.readouterr().out)["items"]
    api = RunAttemptOut.of(RECORD).model_dump(mode="json", by_alias=True)
    assert attempt["job"] == api["job"]
    assert attempt["job"]["containers"][0] == {
        "name": "main",
        "exitCode": 137,
        "reason": "OOMKilled",
    }
    assert attempt["job"]["logError"] == "pod gone"


def test_a_run_without_a_job_has_job_null(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = RunRecord(
        id=run_id("ops/cmd", AT),
        task="ops/cmd",
        scheduled_at=AT,
        trigger=Trigger.MANUAL,
        status=RunStatus.SUCCEEDED,
    )
    state = stored(tmp_path, plain)
    assert cli("runs", "--state-dir", str(state), "--id", plain.id, "--json") == 0
    [attempt] = json.loads(capsys.readouterr().out)["items"]
    assert attempt["job"] is None  # as the API answers it
    assert cli("runs", "--state-dir", str(state), "--id", plain.id) == 0
    assert "job" not in capsys.readouterr().out


def test_the_human_view_shows_the_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = stored(tmp_path, RECORD)
    assert cli("runs", "--state-dir", str(state), "--id", RECORD.id) == 0
    out = capsys.readouterr().out
    assert "  job:       ops/etl-abc\n" in out
    assert "  pod:       etl-abc-x7\n" in out
    assert "  node:      node-3\n" in out
    assert "  container: main: exit code 137 (OOMKilled)\n" in out
    assert "  container: sidecar: exit code 0 (Completed)\n" in out
    assert "  log error: pod gone\n" in out


def test_a_job_not_yet_placed_shows_its_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pending = dataclasses.replace(RECORD, job=JobDetails(namespace="ops", name="etl-abc"))
    state = stored(tmp_path, pending)
    assert cli("runs", "--state-dir", str(state), "--id", RECORD.id) == 0
    out = capsys.readouterr().out
    assert "  job:       ops/etl-abc\n" in out
    assert "pod:" not in out
    assert "node:" not in out
    assert "container:" not in out


def test_a_servers_job_is_shown_escaped(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    job = {
        "namespace": "ops",
        "name": "etl\x1b[2J",
        "pod": "p\x07",
        "node": {"not": "a string"},
        "containers": [{"name": "main\x1b]0;x\x07", "exitCode": 137, "reason": "OOM\rKilled"}],
    }
    attempt = {"id": RECORD.id, "attempt": 1, "status": "failed", "output": "", "job": job}
    hostile.answer = lambda h: h.send(200, {"id": RECORD.id, "attempts": [attempt]})
    assert cli("runs", "--server", hostile.url, "--id", RECORD.id) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "\r" not in out
    assert "  job:       ops/etl\\x1b[2J\n" in out
    assert "  node:      <dict>\n" in out
    assert "  container: main\\x1b]0;x\\x07: exit code 137 (OOM\\x0dKilled)\n" in out


@pytest.mark.parametrize(
    "job", ["text", 7, ["a"], {"name": "j", "containers": "x"}, {"containers": [1, None, {}]}]
)
def test_a_job_of_another_shape_is_no_traceback(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str], job: object
) -> None:
    attempt = {"id": RECORD.id, "attempt": 1, "status": "failed", "output": "", "job": job}
    hostile.answer = lambda h: h.send(200, {"id": RECORD.id, "attempts": [attempt]})
    assert cli("runs", "--server", hostile.url, "--id", RECORD.id) == 0
    assert "Traceback" not in capsys.readouterr().err
