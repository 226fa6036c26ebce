"""The real ``crontask run``, killed (``kill -9``) during a run and started again: the next
start marks the run ``interrupted`` in the store before its metrics exist, and its
``crontask_runs_total{status="interrupted"}`` counts it, as its last
failure shows it."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.core.runs import RunStatus
from tests.e2e.conftest import Crontask
from tests.e2e.test_run import task
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

KEY = "default/slow"


def of_slow(app: Crontask) -> dict[tuple[str, str | None], float]:
    text = httpx.get(f"{app.server}/metrics").raise_for_status().text
    return {
        (s.name, s.labels.get("status")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("task") == KEY
    }


def test_a_run_cut_short_by_a_crash_is_counted_by_the_next_start(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "slow.yaml").write_text(
        task("slow", ["sleep", "60"], "* * * * * *", concurrencyPolicy="Forbid")
    )
    first = Crontask(tmp_path, tasks, [])
    second = Crontask(tmp_path, tasks, [])
    try:
        first.start()
        wait_for("a run in progress", lambda: first.runs(KEY))
        first.stop(signal.SIGKILL)
        second.port = first.port  # the same address, as a restarted service has
        second.server = first.server
        second.start()
        [cut] = [r for r in second.runs(KEY) if r.status is RunStatus.INTERRUPTED]
        assert cut.reason == "ProcessDied"

        def interrupted_counted() -> dict[tuple[str, str | None], float] | None:
            found = of_slow(second)
            return found if found.get(("crontask_runs_total", "interrupted")) else None

        counted = wait_for("the interrupted run counted", interrupted_counted)
        assert counted[("crontask_runs_total", "interrupted")] == 1
        assert cut.finished_at is not None
        failure = counted[("crontask_task_last_failure_timestamp_seconds", None)]
        assert failure == cut.finished_at.timestamp()
    finally:
        first.stop()
        second.stop()
