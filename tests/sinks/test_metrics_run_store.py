"""The run store's series in /metrics (``crontask_run_store_up``,
``crontask_run_records_pending``, ``crontask_run_records_dropped_total``): written from what
the process holds at the scrape, as prometheus_client reads them back, and the counts of a
real recorder whose store is down. A real ``crontask run`` through an outage:
``test_metrics_run_store_outage``."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from reconciler.controller.recorder import Recorder
from reconciler.core.runs import RunStatus
from reconciler.sinks.metrics import Metrics, RunStoreState
from tests.controller.test_recorder import OutageStore, record

NAMES = (
    "crontask_run_store_up",
    "crontask_run_records_pending",
    "crontask_run_records_dropped_total",
)


def store_samples(metrics: Metrics) -> dict[str, float]:
    text = metrics.render()[0].decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in NAMES
    }


def test_the_store_down_and_records_waiting_are_exported() -> None:
    state = RunStoreState(up=False, pending=7, dropped=2)
    metrics = Metrics(run_store=lambda: state)
    assert store_samples(metrics) == dict(zip(NAMES, (0, 7, 2), strict=True))
    families = {f.name: f.type for f in metrics.collect()}
    assert families["crontask_run_store_up"] == "gauge"
    assert families["crontask_run_records_pending"] == "gauge"
    assert families["crontask_run_records_dropped"] == "counter"
    state = RunStoreState(up=True, pending=0, dropped=2)
    assert store_samples(metrics) == dict(zip(NAMES, (1, 0, 2), strict=True))


def test_no_answer_yet_is_no_series_and_the_counts_start_at_zero() -> None:
    metrics = Metrics(run_store=lambda: RunStoreState(up=None, pending=0, dropped=0))
    assert store_samples(metrics) == {
        "crontask_run_records_pending": 0,
        "crontask_run_records_dropped_total": 0,
    }
    assert store_samples(Metrics()) == {}  # a process that records no runs says nothing


def test_a_recorder_whose_store_is_down_shows_its_waiting_and_dropped_records() -> None:
    store = OutageStore()
    scraped: list[dict[str, float]] = []

    async def main() -> None:
        recorder = Recorder(store, capacity=3, retry_initial=0.01)
        metrics = Metrics(
            run_store=lambda: RunStoreState(False, recorder.pending, recorder.dropped)
        )
        store.down = True
        for minute in range(5):
            await recorder.save(record(minute, RunStatus.SUCCEEDED))
        scraped.append(store_samples(metrics))
        store.down = False
        assert await recorder.flush(5)
        scraped.append(store_samples(metrics))
        await recorder.close(1)

    asyncio.run(main())
    pending, dropped = "crontask_run_records_pending", "crontask_run_records_dropped_total"
    assert [(s[pending], s[dropped]) for s in scraped] == [(3, 2), (0, 2)]
