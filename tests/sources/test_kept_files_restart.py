"""The real ``crontask run``, killed while a file is broken and started again over the same state
directory: the broken file's task still runs, on its last good definition, with the error."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from reconciler.sources.keptfiles import FOLDER
from tests.e2e.conftest import Crontask, stop_all
from tests.e2e.test_run import append, lines, task
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e


@pytest.mark.slow
def test_a_task_of_a_broken_file_runs_on_after_a_crash(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    out = tmp_path / "tick.txt"
    app = Crontask(tmp_path, tasks, [])
    try:
        app.start()
        (tasks / "tick.yaml").write_text(task("tick", append(str(out))))
        wait_for("a first run", lambda: lines(out))
        (tasks / "tick.yaml").write_text(task("tick", append(str(out)), schedule="@every 1x"))
        wait_for("its last good definition kept", lambda: list((app.state / FOLDER).glob("*.json")))
        app.stop(signal.SIGKILL)  # a crash: nothing is written on the way out
        app.start()
        ran = len(lines(out))
        wait_for("a run after the restart", lambda: len(lines(out)) > ran)
        [listed] = httpx.get(f"{app.server}/api/v1/tasks", timeout=10).json()["items"]
    finally:
        stop_all([app], request)
    assert listed["key"] == "default/tick"
    assert "unknown unit 'x'" in str(listed)
