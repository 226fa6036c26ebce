"""``crontask_task_slot_before_last_timestamp_seconds`` of the real ``crontask run`` around a
resume: a task that this crontask saw suspended exports no slot before last that fell before
its resume (``CrontaskTaskNoRecentSuccess`` would compare its last success with a slot it did
not have), and exports its own once two slots have come since."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import httpx
import pytest

from tests.e2e.conftest import Crontask
from tests.e2e.test_run import task
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

KEY = 'task="default/resumed"'
EVERY = "*/4 * * * * *"  # two slots come within 8 s of the resume


def scrape(app: Crontask, name: str) -> float | None:
    """The task's sample of ``name`` in one scrape (None: no such series)."""
    text = httpx.get(f"{app.server}/metrics").raise_for_status().text
    found = re.search(rf"^{name}{{{re.escape(KEY)}}} (\S+)$", text, re.MULTILINE)
    return None if found is None else float(found.group(1))


@pytest.mark.slow
def test_no_slot_before_last_from_before_the_resume(crontask: Callable[..., Crontask]) -> None:
    app = crontask()
    file = app.tasks / "resumed.yaml"
    file.write_text(task("resumed", ["true"], schedule=EVERY, suspend="true"))
    # Seen suspended by a scrape: this crontask knows the task before it resumes.
    wait_for("the suspended task in /metrics", lambda: scrape(app, "crontask_running_runs") == 0)
    assert scrape(app, "crontask_task_next_run_timestamp_seconds") is None
    resumed = time.time()  # the resume takes effect after this instant
    file.write_text(task("resumed", ["true"], schedule=EVERY, suspend="false"))
    seen: list[float | None] = []

    def exported() -> float | None:
        # Every scrape from the one that sees the resume on: the slot before last, if any.
        if scrape(app, "crontask_task_next_run_timestamp_seconds") is None:
            return None  # the resume is not in force yet
        slot = scrape(app, "crontask_task_slot_before_last_timestamp_seconds")
        seen.append(slot)
        return slot

    before_last = wait_for("the slot before last back after the resume", exported)
    assert before_last >= resumed, (before_last, resumed)
    assert seen[0] is None, seen  # the first scrape that saw the resume: nothing of before it
