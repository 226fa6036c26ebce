"""Start-up recovery of a run recorded ``running`` with no owner: a store upgraded from schema
0001 (revision 0002 added ``owner`` and left it empty). No crontask can be judged dead for it,
and none will ever end it: recovery ends it ``interrupted``, as a crashed run is, saying its
owner is unknown. It showed ``running`` forever before. A real SQLite store."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.controller.instance import instance_id, recover
from reconciler.core.runs import (
    PROCESS_DIED,
    UNTOLD,
    JobDetails,
    RunRecord,
    RunStatus,
    Trigger,
    run_id,
)
from reconciler.store import RunStore, open_store, sqlite_url

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    opened = open_store(sqlite_url(tmp_path / "state"), writer=True)
    yield opened
    opened.close()


def running(task: str, owner: str | None, **fields: object) -> RunRecord:
    return RunRecord(
        run_id(task, T0),
        task,
        T0,
        Trigger.SCHEDULE,
        RunStatus.RUNNING,
        started_at=T0,
        owner=owner,
        **fields,  # type: ignore[arg-type]
    )


def dead_instance() -> str:
    gone = subprocess.Popen(["true"])
    gone.wait()
    return f"{instance_id().split(':')[0]}:{gone.pid}:0badc0de"


def test_a_running_record_without_an_owner_is_ended_interrupted(store: RunStore) -> None:
    me, dead = instance_id(), dead_instance()
    ownerless = running("ops/old", None)
    job = JobDetails(namespace="ops", name="old-job", uid="u1")
    kept = running("ops/job", None, job=job)  # a Job's work: adopted once Jobs are watched
    crashed = running("ops/crashed", dead)
    for record in (ownerless, kept, crashed):
        store.claim(record)

    told = recover(
        store,
        me,
        NOW,
        outlives=lambda record: record.job is not None,
        scan=lambda: {},
        tells_of=[dead],
    )

    ended = store.get(ownerless.id)
    assert ended is not None
    assert ended.status is RunStatus.INTERRUPTED
    assert ended.finished_at == NOW
    assert ended.reason == PROCESS_DIED
    assert ended.message is not None
    assert "unknown" in ended.message
    # Nobody told of it: the crontask that declares its task does (controller.heartbeat).
    assert ended.message.endswith(UNTOLD)
    assert [r.id for r in store.untold(T0)] == [ownerless.id]
    assert [r.id for r in told] == [crashed.id]
    assert store.running() == [kept]
    # A second start finds nothing more to end.
    assert recover(store, instance_id(), NOW, scan=lambda: {}) == []
    assert store.get(ownerless.id) == ended
