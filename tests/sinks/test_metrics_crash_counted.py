"""The real ``crontask run``, killed (``kill -9``) during a run and started again: the next
start marks the run ``interrupted`` in the store before its metrics exist, and its
``crontask_runs_total{status="interrupted"}`` counts it, once, as its last failure shows it.
With ``--notifications`` (no ``--ha``) the start tells of the run itself, so its record carries
no note that nobody told of it (``History.untold`` does not give it): counted all the same. Its
receiver is a port where nothing listens: what is sent does not matter."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.core.runs import UNTOLD, RunStatus
from tests.e2e.conftest import Crontask
from tests.e2e.test_run import task
from tests.helpers import free_port, wait_for

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


def notifications(tmp_path: Path) -> list[str]:
    (tmp_path / "secret").write_bytes(b"a-secret-for-the-hmac-of-bodies")
    (tmp_path / "hook-url").write_text(f"http://127.0.0.1:{free_port()}/hook")  # none listens
    (tmp_path / "notifications.yaml").write_text(
        "receivers:\n"
        "  - {name: hook, type: generic-hmac, urlFile: hook-url, secretFile: secret}\n"
        "routes:\n"
        "  - {receiver: hook, events: [failed, recovered]}\n"
    )
    return ["--notifications", str(tmp_path / "notifications.yaml")]


@pytest.mark.slow
@pytest.mark.parametrize("told", [False, True], ids=["untold", "told by the next start"])
def test_a_run_cut_short_by_a_crash_is_counted_by_the_next_start(
    tmp_path: Path, told: bool
) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "slow.yaml").write_text(
        task("slow", ["sleep", "60"], "* * * * * *", concurrencyPolicy="Forbid")
    )
    extra = notifications(tmp_path) if told else []
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
        assert (cut.message or "").endswith(UNTOLD) is not told

        def interrupted_counted() -> dict[tuple[str, str | None], float] | None:
            found = of_slow(second)
            return found if found.get(("crontask_runs_total", "interrupted")) else None

        counted = wait_for("the interrupted run counted", interrupted_counted)
        assert counted[("crontask_runs_total", "interrupted")] == 1
        assert cut.finished_at is not None
        failure = counted[("crontask_task_last_failure_timestamp_seconds", None)]
        assert failure == cut.finished_at.timestamp()
        # Counted once: a later scrape reads nothing more.
        assert of_slow(second)[("crontask_runs_total", "interrupted")] == 1
    finally:
        first.stop()
        second.stop()
