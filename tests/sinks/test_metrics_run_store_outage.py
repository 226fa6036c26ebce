"""A run store outage seen by scraping the real ``crontask run`` directly (the PodMonitor, or
the README's advice to scrape the pod): /readyz fails while the scrape keeps answering, so
Prometheus's ``up`` stays 1 and before, no series said the store was down or that records
waited. Now ``crontask_run_store_up`` goes to 0 and ``crontask_run_records_pending`` counts the
records kept, and both come back once the store does. The outage is real: the SQLite file is
moved away from under the process (its store then refuses every write rather than make a new,
empty file) and put back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Crontask
from tests.e2e.test_run import task
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

STORE = (
    "crontask_run_store_up",
    "crontask_run_records_pending",
    "crontask_run_records_dropped_total",
)
PENDING = STORE[1]


def store_series(app: Crontask) -> dict[str, float]:
    """The run store's series of one scrape (which must answer: the pod is scraped)."""
    response = httpx.get(f"{app.server}/metrics", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name in STORE
    }


def scraped_when(
    app: Crontask, what: str, holds: Callable[[dict[str, float]], bool]
) -> dict[str, float]:
    """The run store's series of the first scrape where ``holds``, polled with a deadline."""

    def scraped() -> dict[str, float] | None:
        series = store_series(app)
        return series if holds(series) else None

    return wait_for(what, scraped)


def readyz(app: Crontask) -> int:
    return httpx.get(f"{app.server}/readyz", timeout=10).status_code


@pytest.mark.slow  # about 11 s: a start, an outage and the recorder's backoff after it
def test_the_scrape_says_the_store_is_down_and_records_wait(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "tick.yaml").write_text(task("tick", ["true"]))
    app = Crontask(tmp_path, tasks, [])
    database, away = app.state / "runs.db", app.state / "runs.db.away"
    try:
        app.start()
        wait_for("a run recorded", lambda: app.runs("default/tick"))
        healthy = scraped_when(
            app, "the store's first answer", lambda s: s.get("crontask_run_store_up") == 1
        )
        assert healthy == dict(zip(STORE, (1, 0, 0), strict=True))

        database.rename(away)
        app.wait_log("records kept for later")
        during = scraped_when(
            app,
            "the store down and records waiting, in the scrape",
            lambda s: s.get("crontask_run_store_up") == 0 and s[PENDING] > 0,
        )
        assert during["crontask_run_records_dropped_total"] == 0
        assert readyz(app) == 503  # what a scrape through the Service would not get past

        away.rename(database)
        app.wait_log("run store back; pending records written", timeout=60)
        after = scraped_when(
            app,
            "the store back and nothing waiting, in the scrape",
            lambda s: s.get("crontask_run_store_up") == 1 and s[PENDING] == 0,
        )
        assert after["crontask_run_records_dropped_total"] == 0
        assert readyz(app) == 200
    finally:
        code = app.stop()
    assert code == 0  # nothing was left waiting: no record lost at the stop
