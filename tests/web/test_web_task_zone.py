"""A task's times are shown in the task's zone, with the zone's abbreviation, wherever the page
shows them for that task: the list's last-run and next-run tooltips and its strip, the task
page's last run, timeline bars and history, and the run page (they were UTC in some places and
the task's zone in others, on a timeline whose axis is in the task's zone). A run whose task is
no longer declared is shown in UTC."""

from __future__ import annotations

import re
from datetime import timedelta

from reconciler.core.runs import RunStatus, run_id
from tests.api.conftest import TestClient
from tests.api.fakes import T0, FakeRuntime, record

KEY = "ops/backup"  # Europe/Berlin (tests/web/conftest.py)
AT = T0 - timedelta(minutes=10)  # 00:50 UTC, 01:50 CET
IN_ZONE = "2026-11-27 01:50:00 CET"
IN_UTC = "2026-11-27 00:50:00 UTC"


def titles(html: str) -> list[str]:
    return re.findall(r'title="([^"]*\d\d:\d\d:\d\d[^"]*)"', html) + re.findall(
        r"<title>([^<]*\d\d:\d\d:\d\d[^<]*)</title>", html
    )


def test_the_list_shows_a_tasks_runs_in_its_zone(runtime: FakeRuntime, page: TestClient) -> None:
    runtime.store.claim(record(KEY, AT, RunStatus.FAILED))
    html = page.get("/").text
    row = html.split(f'data-task="{KEY}"')[1].split("</tr>")[0]
    assert f'title="{IN_ZONE}: failed"' in row  # the strip's cell
    assert 'title="2026-11-27 01:50:03 CET"' in row  # the last run's end
    assert all("UTC" not in t for t in titles(row)), titles(row)


def test_the_task_page_shows_its_runs_in_its_zone(runtime: FakeRuntime, page: TestClient) -> None:
    runtime.store.claim(record(KEY, AT, RunStatus.FAILED))
    html = page.get(f"/tasks/{KEY}").text
    main = html.split("<main>")[1].split("</main>")[0]
    assert f"{IN_ZONE}: failed in 2.0 s" in main  # the timeline's bar
    assert IN_UTC not in main
    assert all("UTC" not in t for t in titles(main)), titles(main)


def test_the_run_page_shows_the_run_in_its_tasks_zone(
    runtime: FakeRuntime, page: TestClient
) -> None:
    runtime.store.claim(record(KEY, AT, RunStatus.FAILED))
    main = page.get(f"/runs/{run_id(KEY, AT)}").text.split("<main>")[1].split("</main>")[0]
    assert f"<dd>{IN_ZONE}</dd>" in main  # Scheduled
    assert 'title="2026-11-27 01:50:01 CET"' in main  # Started
    assert "UTC" not in main
    del runtime.views[KEY]  # no longer declared: no zone to show it in
    main = page.get(f"/runs/{run_id(KEY, AT)}").text.split("<main>")[1].split("</main>")[0]
    assert f"<dd>{IN_UTC}</dd>" in main
