"""A burst of run-nows (``POST /api/v1/tasks/{ns}/{name}/runs``, at once) of a ``Replace``
task while its run is slow to stop: each replaces the ones before it and one run goes. The
runs about to be replaced counted toward the task's 10 manual runs going, and past them the
rest were answered ``skipped`` (``TooManyManualRuns``) though no more than one ran. One
replaced before it began is answered so (``skipped``, ``Replaced``), at once.

The real ``crontask run`` (a subprocess), real concurrent HTTP requests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.core.runs import MANUAL_MAX, RunStatus
from tests.e2e.conftest import Crontask, crontask
from tests.e2e.test_run_now_replace_pending_command import LONG_GRACE, TASK, write_task
from tests.helpers import wait_for

__all__ = ["crontask"]

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # the pending answers' whole wait

# Past the task's bound with the first run, within the API's requests served at once
# (api/admission.py: 16), so each is decided as it arrives.
BURST = MANUAL_MAX + 2


async def run_now_at_once(server: str, count: int) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as client:
        asked = [client.post(f"/api/v1/tasks/{TASK}/runs") for _ in range(count)]
        answers = await asyncio.gather(*asked)
    assert [a.status_code for a in answers] == [202] * count, [a.text for a in answers]
    return [a.json() for a in answers]


def test_runs_about_to_be_replaced_do_not_use_up_the_manual_runs(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    app = crontask(wrapper=LONG_GRACE)  # the run replaced ends by the gate, well within it
    started, gate = tmp_path / "started", tmp_path / "gate"
    # Deaf to SIGTERM until the gate opens: every run asked meanwhile waits for it.
    write_task(app, f"trap '' TERM; touch {started}; while [ ! -e {gate} ]; do sleep 0.05; done")
    try:
        (first,) = asyncio.run(run_now_at_once(app.server, 1))
        assert first["status"] == "running", first
        wait_for("the first run's command", started.exists)
        answers = asyncio.run(run_now_at_once(app.server, BURST))
    finally:
        gate.touch()  # else the stop at the test's end waits out the kill grace

    # Each replaced before it began never begins: answered so at once, as recorded, not
    # "pending" until the run deaf to its stop ends.
    waiting = [a for a in answers if a["status"] == "pending"]
    assert len(waiting) >= 1, answers
    others = [(a["status"], a["reason"]) for a in answers if a["status"] != "pending"]
    assert set(others) <= {("skipped", "Replaced")}, answers
    ids = {first["id"], *(a["id"] for a in answers)}
    assert len(ids) == BURST + 1

    def all_ended() -> list[Any] | None:
        records = [r for r in app.runs(TASK) if r.id in ids]
        done = len(records) == len(ids) and all(r.status.finished for r in records)
        return records if done else None

    records = wait_for("every run's end", all_ended, timeout=30)
    assert "TooManyManualRuns" not in {r.reason for r in records}
    ran = [r for r in records if r.status is RunStatus.SUCCEEDED]
    assert len(ran) == 1, records  # the newest; the others were replaced
