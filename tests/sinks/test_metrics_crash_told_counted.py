"""The real ``crontask run --notifications`` (no ``--ha``), killed (``kill -9``) during a run and
started again: the next start marks the run ``interrupted`` and tells of it itself, so its
record carries no note that nobody told of it (``History.untold`` does not give it); its
``crontask_runs_total{status="interrupted"}`` counts it all the same, once, as its last failure
shows it. The receiver is a local port where nothing listens: what is sent does not matter."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from reconciler.core.runs import UNTOLD, RunStatus
from tests.e2e.conftest import Crontask
from tests.e2e.test_run import task
from tests.helpers import wait_for
from tests.sinks.test_metrics_crash_counted import KEY, of_slow

pytestmark = pytest.mark.e2e

# A port in this test's range where nothing listens: the messages fail, nothing waits on them.
UNREACHABLE = "http://127.0.0.1:34017/hook"


def told(tmp_path: Path) -> list[str]:
    (tmp_path / "secret").write_bytes(b"a-secret-for-the-hmac-of-bodies")
    (tmp_path / "hook-url").write_text(UNREACHABLE)
    (tmp_path / "notifications.yaml").write_text(
        "receivers:\n"
        "  - {name: hook, type: generic-hmac, urlFile: hook-url, secretFile: secret}\n"
        "routes:\n"
        "  - {receiver: hook, events: [failed, recovered]}\n"
    )
    return ["--notifications", str(tmp_path / "notifications.yaml")]


def test_a_run_cut_short_by_a_crash_that_crontask_tells_of_is_counted(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "slow.yaml").write_text(
        task("slow", ["sleep", "60"], "* * * * * *", concurrencyPolicy="Forbid")
    )
    extra = told(tmp_path)
    first = Crontask(tmp_path, tasks, extra)
    second = Crontask(tmp_path, tasks, extra)
    try:
        first.start()
        wait_for("a run in progress", lambda: first.runs(KEY))
        first.stop(signal.SIGKILL)
        second.port = first.port  # the same address, as a restarted service has
        second.server = first.server
        second.start()
        [cut] = [r for r in second.runs(KEY) if r.status is RunStatus.INTERRUPTED]
        assert cut.reason == "ProcessDied"
        assert not (cut.message or "").endswith(UNTOLD)  # told by this crontask

        def interrupted_counted() -> dict[tuple[str, str | None], float] | None:
            found = of_slow(second)
            return found if found.get(("crontask_runs_total", "interrupted")) else None

        counted = wait_for("the interrupted run counted", interrupted_counted)
        assert counted[("crontask_runs_total", "interrupted")] == 1
        assert cut.finished_at is not None
        failure = counted[("crontask_task_last_failure_timestamp_seconds", None)]
        assert failure == cut.finished_at.timestamp()
        # Counted once: later scrapes read nothing more (the note-less record is not untold).
        assert of_slow(second)[("crontask_runs_total", "interrupted")] == 1
    finally:
        first.stop()
        second.stop()
