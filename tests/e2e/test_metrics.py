"""``/metrics`` of the real ``crontask run``: the series of a task that has failed and succeeded,
gzip as Prometheus asks for it, and the per-task histogram flag."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.core.runs import RunStatus
from reconciler.core.status import FAILURES
from tests.e2e.conftest import Crontask
from tests.e2e.test_run import task
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

# Succeeds in even seconds, fails in odd ones: a success and a failure every two slots. Not
# retried: a failed attempt whose retry follows is no failure of the task's yet.
FLAKY = ["sh", "-c", 'case "$CRONTASK_SCHEDULED_TIME" in *[02468]+00:00) exit 0;; *) exit 1;; esac']
SPEC = {"concurrencyPolicy": "Allow"}
SUCCESS = frozenset({RunStatus.SUCCEEDED})


def scrape(app: Crontask) -> tuple[str, httpx.Response]:
    response = httpx.get(f"{app.server}/metrics", headers={"Accept-Encoding": "gzip"})
    response.raise_for_status()
    return response.text, response  # httpx decoded the gzip body


def series_of(text: str, key: str) -> set[tuple[str, str | None]]:
    return {
        (s.name, s.labels.get("status"))
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("task") == key
    }


@pytest.mark.slow
def test_a_task_that_failed_and_succeeded_has_eleven_series(
    crontask: Callable[..., Crontask],
) -> None:
    app = crontask()
    (app.tasks / "flaky.yaml").write_text(task("flaky", FLAKY, **SPEC))

    def both() -> str:  # "" until then
        text = scrape(app)[0]
        # And the slot before last: a task declared while crontask runs has it from its second
        # slot after a scrape saw it declared (metrics_slots), which may come a slot later.
        done = ("last_success", "last_failure", "slot_before_last")
        samples = [f'crontask_task_{d}_timestamp_seconds{{task="default/flaky"}}' for d in done]
        # And no run in progress: one adds a twelfth series (when it started) while it lasts.
        idle = 'crontask_running_runs{task="default/flaky"} 0\n' in text
        return text if idle and all(sample in text for sample in samples) else ""

    text = wait_for("a success, a failure and a slot before last in /metrics, idle", both)
    assert series_of(text, "default/flaky") == {
        ("crontask_runs_total", "succeeded"),
        ("crontask_runs_total", "failed"),
        ("crontask_runs_total", "timedOut"),  # from 0, as failed: increase() sees the first
        ("crontask_runs_total", "interrupted"),
        ("crontask_running_runs", None),
        ("crontask_task_next_run_timestamp_seconds", None),
        ("crontask_task_schedule_interval_seconds", None),
        ("crontask_task_slot_before_last_timestamp_seconds", None),
        ("crontask_task_last_success_timestamp_seconds", None),
        ("crontask_task_last_failure_timestamp_seconds", None),
        ("crontask_task_last_run_duration_seconds", None),
    }
    assert "_created" not in text
    for family in text_string_to_metric_families(text):
        if family.type == "histogram":
            assert all("task" not in s.labels for s in family.samples), family.name
    interval = 'crontask_task_schedule_interval_seconds{task="default/flaky"} 1\n'
    assert interval in text
    _, response = scrape(app)
    assert response.headers["content-encoding"] == "gzip"


@pytest.mark.slow
def test_the_last_success_and_failure_survive_a_restart(
    crontask: Callable[..., Crontask],
) -> None:
    app = crontask()
    (app.tasks / "flaky.yaml").write_text(task("flaky", FLAKY, **SPEC))
    label = '{task="default/flaky"}'
    names = [f"crontask_task_last_{d}_timestamp_seconds" for d in ("success", "failure")]
    wait_for("a success and a failure", lambda: all(n + label in scrape(app)[0] for n in names))
    assert app.stop() == 0
    # Its next slot is a year away: nothing runs after the restart.
    (app.tasks / "flaky.yaml").write_text(task("flaky", FLAKY, "0 0 1 1 *", **SPEC))
    records = app.runs("default/flaky")
    ends = {
        status: max(r.finished_at for r in records if r.status in statuses and r.finished_at)
        for status, statuses in (("success", SUCCESS), ("failure", FAILURES))
    }
    app.start()

    def seeded() -> dict[tuple[str, str | None], float]:  # {} until then
        values = {
            (s.name, s.labels.get("status")): s.value
            for family in text_string_to_metric_families(scrape(app)[0])
            for s in family.samples
            if s.labels.get("task") == "default/flaky"
        }
        return values if all((name, None) in values for name in names) else {}

    # A scrape waits a second at most for the history read that seeds the timestamps (then
    # serves without them, and the next one shows them): a loaded machine can take longer.
    values = wait_for("the last success and failure read back", seeded)
    for outcome, at in ends.items():
        assert values[(f"crontask_task_last_{outcome}_timestamp_seconds", None)] == at.timestamp()
    assert values[("crontask_runs_total", "succeeded")] == 0  # counters are this process's
    assert app.runs("default/flaky") == records


def test_per_task_histograms_behind_a_flag(crontask: Callable[..., Crontask]) -> None:
    app = crontask("--metrics-per-task-histograms")
    (app.tasks / "flaky.yaml").write_text(task("flaky", FLAKY, **SPEC))
    bucket = 'crontask_run_duration_seconds_bucket{le="+Inf",task="default/flaky"} '

    def with_a_run() -> str:  # "" until then
        text = scrape(app)[0]
        counted = [line for line in text.splitlines() if line.startswith(bucket)]
        return text if counted and not counted[0].endswith(" 0") else ""

    text = wait_for("a per-task duration histogram with a run in it", with_a_run)
    assert "crontask_run_duration_seconds_count " not in text  # no unlabelled twin


def test_the_flag_says_what_it_costs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    flat = " ".join(done.stdout.split())
    assert "--metrics-per-task-histograms" in flat
    assert "17 series per task" in flat
