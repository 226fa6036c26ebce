"""``crontask_replica_fenced``: with --ha, 1 while this replica starts no runs; without --ha
there is no such series (as for every replica family)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from reconciler.sinks.metrics import Metrics


def samples(metrics: Metrics) -> dict[str, float]:
    text = metrics.render()[0].decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_without_replicas_there_is_no_series() -> None:
    assert "crontask_replica_fenced" not in samples(Metrics())


def test_the_gauge_says_whether_the_replica_is_fenced() -> None:
    metrics = Metrics()
    metrics.replicas(3, False)
    assert samples(metrics)["crontask_replica_fenced"] == 0
    metrics.replicas(3, False, True)
    assert samples(metrics)["crontask_replica_fenced"] == 1
    metrics.handed_over(2)  # a handover keeps what the last report said
    assert samples(metrics)["crontask_replica_fenced"] == 1
    assert samples(metrics)["crontask_handovers_total"] == 2
    metrics.replicas(3, False, False)
    assert samples(metrics)["crontask_replica_fenced"] == 0


def test_the_collector_and_the_text_agree() -> None:
    metrics = Metrics()
    metrics.replicas(2, False, True)
    family = next(f for f in metrics.collect() if f.name == "crontask_replica_fenced")
    assert family.type == "gauge"
    assert [s.value for s in family.samples] == [1]
