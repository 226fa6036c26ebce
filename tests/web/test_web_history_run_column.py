"""The Run column of a task's history names each run by its slot, the part of its id after the
task's: a manual run's slot holds a fraction of a second (``runs.manual_slot``), and the
column showed only what followed its last dot, ``831606Z``, for every Run now."""

from __future__ import annotations

from datetime import timedelta

from reconciler.core.runs import Trigger
from tests.api.conftest import TestClient
from tests.api.fakes import T0, FakeRuntime, record


def test_a_manual_run_is_named_by_its_whole_slot(runtime: FakeRuntime, page: TestClient) -> None:
    at = T0 + timedelta(seconds=9, microseconds=831606)
    manual = record("ops/flaky", at, trigger=Trigger.MANUAL)
    runtime.store.claim(manual)
    html = page.get("/tasks/ops/flaky").text
    slot = manual.id.removeprefix("ops.flaky.")
    assert slot.endswith(".831606Z")
    assert f'<a href="/runs/{manual.id}">{slot}</a>' in html
    scheduled = record("ops/flaky", T0)
    assert f'<a href="/runs/{scheduled.id}">{scheduled.id.removeprefix("ops.flaky.")}</a>' in html
