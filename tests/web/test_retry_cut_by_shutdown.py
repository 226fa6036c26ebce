"""A failed attempt whose retry crontask's own shutdown abandoned (or cut short) leaves the
task failing on the page, as the metrics and the notifier say: the shutdown changes nothing of
how the task does, so the run is told by the failed attempt before it."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from reconciler.core.runs import RunRecord, RunStatus, Trigger
from reconciler.core.status import SHUTDOWN_REASON
from tests.api.conftest import TestClient
from tests.api.fakes import T0, FakeRuntime, record, view
from tests.web.test_pages import keys

KEY = "default/retried"


def cut(*, started: bool) -> RunRecord:
    """Attempt 2 of the run of T0, interrupted by the shutdown: while it waited (it never
    started), or while it ran."""
    retry = record(KEY, T0, RunStatus.INTERRUPTED, attempt=2, trigger=Trigger.RETRY, output="")
    return dataclasses.replace(
        retry,
        started_at=retry.started_at if started else None,
        reason=SHUTDOWN_REASON,
        exit_code=None,
    )


def row_of(html: str) -> str:
    return html.split(f'data-task="{KEY}"')[1].split("</tr>")[0]


@pytest.mark.parametrize("started", [False, True], ids=["abandoned", "cut-short"])
@pytest.mark.parametrize("held", [False, True], ids=["after-a-restart", "held"])
def test_a_failure_whose_retry_the_shutdown_cut_leaves_the_task_failing(
    runtime: FakeRuntime, page: TestClient, started: bool, held: bool
) -> None:
    failed = record(KEY, T0, RunStatus.FAILED, output="boom\n")
    retry = cut(started=started)
    runtime.store.claim(record(KEY, T0 - timedelta(hours=1), RunStatus.SUCCEEDED))
    runtime.store.claim(failed)
    runtime.store.claim(retry)
    # What the runtime holds: the retry's record (held), or nothing yet (after a restart).
    runtime.views[KEY] = view("retried", last_run=retry if held else None)
    row = row_of(page.get("/").text)
    assert 'class="badge failing"' in row
    assert 'class="badge ok"' not in row
    assert "exit 1" in row  # the last result is the failed attempt's
    assert KEY in keys(page.get("/?state=failing").text)
    assert KEY not in keys(page.get("/?state=ok").text)
    task = page.get(f"/tasks/{KEY}").text
    assert "no runs yet" not in task
    assert f'href="/runs/{failed.id}"' in task


def test_a_first_attempt_the_shutdown_cut_still_counts_for_nothing(
    runtime: FakeRuntime, page: TestClient
) -> None:
    """Only a retry's interruption leaves an attempt before it to tell: a run the shutdown cut
    in its first attempt leaves the task as it was (here: ok)."""
    runtime.store.claim(record(KEY, T0 - timedelta(hours=1), RunStatus.SUCCEEDED))
    first = dataclasses.replace(
        record(KEY, T0, RunStatus.INTERRUPTED), reason=SHUTDOWN_REASON, exit_code=None
    )
    runtime.store.claim(first)
    runtime.views[KEY] = view("retried", last_run=first)
    row = row_of(page.get("/").text)
    assert 'class="badge ok"' in row
    assert KEY in keys(page.get("/?state=ok").text)
