"""A run asked for now (``POST /api/v1/tasks/{ns}/{name}/runs``) is answered ``running`` only
once the dispatcher says its process started (``Triggered.start``). Under ``Replace``, a run
replaced by a later run-now before it began (its claim still on its way to the store) never
runs: it is answered as recorded, skipped ``Replaced``. It was answered ``running`` at once
(``crontask trigger`` exit 0: "the run started"): a review saw three of eight run-nows sent
10 ms apart told so, each recorded skipped with no start.

The real ``crontask run`` on its SQLite store, which the test locks for writes so that the
first run's claim waits (up to the lane's ``ANSWER_WAIT``) while the second is asked."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Crontask, crontask
from tests.e2e.test_run_now_replace_pending_command import (
    TASK,
    finished,
    locked,
    trigger,
    write_task,
)
from tests.helpers import wait_for

__all__ = ["crontask"]

pytestmark = pytest.mark.e2e


def going(app: Crontask) -> list[str]:
    """The ids of the task's runs the dispatcher follows (decided, begun or not)."""
    response = httpx.get(f"{app.server}/api/v1/tasks/{TASK}", timeout=5)
    response.raise_for_status()
    running: list[str] = response.json()["running"]
    return running


def test_a_run_replaced_before_it_began_is_answered_skipped_not_running(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    app = crontask()
    write_task(app, "sleep 30")
    answers: dict[str, dict[str, Any]] = {}

    def first_run() -> None:
        answers["first"], _ = trigger(app)

    asking = threading.Thread(target=first_run)
    with locked(app.state):
        asking.start()
        # The first run decided, its claim waiting for the locked store: not begun.
        first_id = wait_for("the first run decided", lambda: going(app))[0]
        second, _ = trigger(app)  # it replaces the first, and runs (its claim kept)
    asking.join(15)

    assert second["status"] == "running", second
    first = answers["first"]
    assert first["id"] == first_id
    assert first["status"] != "running", first  # it never ran
    assert first["startTime"] is None, first
    # Its claim (running) and its skip wait together for the store: the claim may be read
    # written before the skip is.
    record = wait_for("the first run's end recorded", lambda: finished(app, first_id))
    assert (record.status.value, record.reason, record.started_at) == ("skipped", "Replaced", None)
    if first["status"] == "skipped":  # its skip was written within the answer's wait
        assert first["reason"] == "Replaced", first
    else:  # else it says that it will not start, not that it waits
        assert first["status"] == "pending", first
        assert "it will not start" in first["message"], first
