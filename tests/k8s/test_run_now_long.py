"""A run-now value too long to be a marker (a timestamp, a counter) is refused where it is
read: a ``RunNowIgnored`` Event says why, no run starts, nothing reaches the status, and the
CronTask stays valid and scheduled, also after a restart (the annotation is not part of the
task, so its length never makes the spec invalid)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.core.status import MAX_RUN_NOW, RUN_NOW_ANNOTATION
from tests.helpers import wait_for
from tests.k8s.emulator import Emulator
from tests.k8s.test_status_runtime import (
    api,  # noqa: F401  (a fixture)
    create,
    patch,
    ready,
    run_with_crontask,
    status_of,
)

pytestmark = pytest.mark.usefixtures("real_crd")


def ignored(emulator: Emulator) -> list[dict[str, Any]]:
    return [e for e in emulator.objects("events") if e["reason"] == "RunNowIgnored"]


def told(emulator: Emulator) -> int:
    """How many times RunNowIgnored was said (each crontask records its own Event)."""
    return sum(int(e["count"]) for e in ignored(emulator))


def test_a_run_now_value_too_long_is_ignored_and_the_task_stays_scheduled(
    tmp_path: Path,
    kubeconfig: Path,
    emulator: Emulator,
    api: Any,  # noqa: F811
) -> None:
    create(api, "rn", {"schedule": "0 0 1 1 *"})
    long_value = "y" * 40_000  # over the model's 32 768 characters of an annotation

    def first() -> None:
        wait_for("Ready", lambda: ready(emulator, "rn").get("status") == "True")
        patch(api, "rn", {"metadata": {"annotations": {RUN_NOW_ANNOTATION: long_value}}})
        (event,) = wait_for("RunNowIgnored", lambda: ignored(emulator))
        assert event["type"] == "Warning"
        assert "too long" in event["message"]
        assert str(MAX_RUN_NOW) in event["message"]
        assert ready(emulator, "rn")["reason"] == "Scheduled"
        status = status_of(emulator, "rn")
        assert "lastRunNow" not in status
        assert "lastRun" not in status
        reasons = {e["reason"] for e in emulator.objects("events")}
        assert "RunStarted" not in reasons
        assert "InvalidSpec" not in reasons
        # A later pass (a short value) is acted on as ever, the long one not again.
        patch(api, "rn", {"metadata": {"annotations": {RUN_NOW_ANNOTATION: "b"}}})
        wait_for("lastRunNow b", lambda: status_of(emulator, "rn").get("lastRunNow") == "b")
        assert ignored(emulator)[0]["count"] == 1

    run_with_crontask(tmp_path, kubeconfig, first)

    def again() -> None:
        patch(api, "rn", {"metadata": {"annotations": {RUN_NOW_ANNOTATION: long_value}}})
        wait_for("RunNowIgnored again", lambda: told(emulator) == 2)
        assert ready(emulator, "rn")["reason"] == "Scheduled"
        assert status_of(emulator, "rn").get("lastRunNow") == "b"

    # A new crontask finds the long value on a task it must still schedule.
    run_with_crontask(tmp_path, kubeconfig, again)
