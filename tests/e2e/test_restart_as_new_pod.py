"""A pod recreated under a new name: crontask killed during a run, with its pid namespace (its
command dies with it), and started again as pid 1 of a new pid namespace, under another host
name, with an empty state directory of its own (an ``emptyDir``) and the same ``--db``.
Nothing on the new host proves the old one dead; the heartbeat it left in the store does once
the new one has seen it unchanged for its lease (``controller.heartbeat``). Root only
(``unshare``); slow: the lease (30 s) is waited out."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from reconciler.controller.heartbeat import LEASE_SECONDS
from reconciler.core.runs import RunStatus
from reconciler.store import sqlite_url
from reconciler.store.sql import SqlRunStore
from reconciler.store.sql_schema import instances
from tests.e2e.conftest import Crontask
from tests.e2e.test_pid1 import unshare_refused
from tests.e2e.test_restart_elsewhere import named, runs
from tests.e2e.test_run import task
from tests.helpers import wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(unshare_refused() is not None, reason=str(unshare_refused())),
]
POD = ["--pid", "--fork", "--kill-child", "--mount-proc"]


@pytest.fixture
def killed_pod(crontask: Callable[..., Crontask], tmp_path: Path) -> Path:
    """The shared database, with the run the killed pod's crontask left ``running``."""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o700)
    old = crontask("--db", sqlite_url(shared), wrapper=named("crontask-7d9f-abcde", *POD))
    (old.tasks / "long.yaml").write_text(task("long", ["sleep", "300"]))
    wait_for("its running record", lambda: [r.status for r in runs(shared)] == [RunStatus.RUNNING])
    old.stop(signal.SIGKILL)  # unshare, and with it its pid 1 (--kill-child) and all of its own
    (old.tasks / "long.yaml").unlink()
    return shared


def new_pod(tmp_path: Path, shared: Path) -> Crontask:
    """It declares the task, as the pod it replaces did (the same ConfigMap), suspended so
    that the run it judges stays the only one."""
    (tmp_path / "new").mkdir()
    tasks = tmp_path / "new" / "tasks"
    tasks.mkdir()
    (tasks / "long.yaml").write_text(task("long", ["sleep", "300"], suspend="true"))
    pod = Crontask(tmp_path / "new", tasks, ["--db", sqlite_url(shared)])
    pod.wrapper = named("crontask-7d9f-fghij", *POD)
    return pod


@pytest.mark.slow  # the lease (30 s) waited out
def test_a_new_pod_ends_the_run_of_one_whose_beat_stopped(killed_pod: Path, tmp_path: Path) -> None:
    pod = new_pod(tmp_path, killed_pod)
    pod.start()
    try:
        assert "left to it until its heartbeat in the run store stops" in pod.log()
        assert [r.status for r in runs(killed_pod)] == [RunStatus.RUNNING]
        pod.wait_log("run interrupted: its crontask stopped beating", timeout=LEASE_SECONDS + 20)
        # The old pod's row goes in the same sweep, just after the line is logged; the new
        # pod's stays (killed below, not stopped).
        wait_for("the old pod's row removed", lambda: instance_rows(killed_pod) == 1)
    finally:
        pod.stop(signal.SIGKILL)
    assert [(r.status, r.reason) for r in runs(killed_pod)] == [
        (RunStatus.INTERRUPTED, "ProcessDied")
    ]
    assert instance_rows(killed_pod) == 1


def instance_rows(shared: Path) -> int | None:
    store = SqlRunStore.open(sqlite_url(shared))
    try:
        with store.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(instances)).scalar()
    finally:
        store.close()
