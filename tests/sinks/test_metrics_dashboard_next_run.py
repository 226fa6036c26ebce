"""The dashboard's "Tasks" table says when a task runs next as of the scrape that read it: a
task more frequent than the scrape interval (every 10 s, scraped every minute) has run again
since that scrape, and "next run minus now" showed it due 40 s ago, every minute, for a task
that was running on time. Checked with promtool on the panel's own query."""

from __future__ import annotations

from pathlib import Path

from tests.sinks.test_metrics_dashboard_task_failures import promtool_test, table

TASK = "default/often"


def test_a_task_more_frequent_than_the_scrapes_is_never_shown_overdue(tmp_path: Path) -> None:
    # Scraped at 0, 60, ..., 300 s: each scrape says the next slot is 10 s later.
    series = [
        {
            "series": f'crontask_task_next_run_timestamp_seconds{{job="crontask",task="{TASK}"}}',
            "values": "10+60x5",
        }
    ]
    checks = [
        {
            "expr": table()["B"],
            "eval_time": "5m50s",  # 50 s after the last scrape, whose next slot (310) is past
            "exp_samples": [{"labels": f'{{job="crontask",task="{TASK}"}}', "value": 10}],
        }
    ]
    promtool_test(tmp_path, series, checks)
