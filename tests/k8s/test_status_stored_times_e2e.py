"""A CronTask's status time that anyone with ``/status`` access wrote, and the API server took,
but that crontask cannot keep: ``kubectl patch --subresource=status`` of a time past year 9999
in UTC, one before year 1, one far in the future. The real ``crontask run --kubernetes``
against the emulator: the status keeps moving (every write of it failed with ``OverflowError``
before, its conditions and last run froze) and a run-now on the object still runs, also when
the value was written while crontask was down."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.runs import Trigger
from tests.helpers import wait_for
from tests.k8s.conftest import REAL_CRD
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import Kubectl
from tests.k8s.test_kubectl_e2e import Crontask, manifest, status

pytestmark = pytest.mark.e2e

TIMES = ("lastScheduleTime", "lastSuccessfulTime", "lastFailureTime")


def patch_status(kubectl: Kubectl, name: str, fields: dict[str, str]) -> None:
    """What the reviewer sent: a merge patch of the status subresource."""
    body = json.dumps({"status": fields})
    kubectl("patch", "ct", name, "--subresource=status", "--type=merge", "-p", body)


def moved_on(kubectl: Kubectl, name: str, after: str) -> dict[str, Any] | None:
    """The status, once it tells of a run other than ``after`` with a real schedule time."""
    current = status(kubectl, name)
    last = current.get("lastRun") or {}
    if last.get("id") in (None, after) or last.get("result") != "succeeded":
        return None
    if not str(current.get("lastScheduleTime", "")).startswith("20"):
        return None
    return current


def manual_runs(crontask: Crontask) -> int:
    return sum(r.trigger is Trigger.MANUAL for r in crontask.runs("default/victim"))


@pytest.mark.slow
def test_the_status_keeps_moving_past_a_time_it_cannot_keep(
    kubectl: Kubectl, emulator: Emulator, tmp_path: Path
) -> None:
    kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig")
    crontask = Crontask(tmp_path, kubeconfig)
    kubectl("apply", "-f", str(REAL_CRD))
    kubectl("apply", "-f", "-", stdin=manifest("victim", "* * * * * *", ["true"]))
    try:
        crontask.start()
        first = wait_for("a run in the status", lambda: moved_on(kubectl, "victim", ""))

        # -- past year 9999 in UTC, written while crontask runs --------------------------------
        patch_status(kubectl, "victim", {"lastScheduleTime": "9999-12-31T23:00:00-05:00"})
        assert "victim" in kubectl("get", "ct", "victim")  # the table renders it, too
        second = wait_for(
            "the status moving on", lambda: moved_on(kubectl, "victim", first["lastRun"]["id"])
        )

        # -- far in the future: a real run's time replaces it ---------------------------------
        patch_status(kubectl, "victim", {"lastSuccessfulTime": "9999-12-31T23:59:59Z"})
        wait_for(
            "a real lastSuccessfulTime",
            lambda: str(status(kubectl, "victim").get("lastSuccessfulTime")).startswith("20"),
        )

        kubectl("annotate", "ct", "victim", "crontask.dev/run-now=1", "--overwrite")
        wait_for("the manual run", lambda: manual_runs(crontask) == 1)
        assert status(kubectl, "victim")["lastRunNow"] == "1"

        # -- before year 1 in UTC, in every time, written while crontask is down -------------
        crontask.stop()
        patch_status(kubectl, "victim", dict.fromkeys(TIMES, "0001-01-01T00:00:00+01:00"))
        crontask.start()
        after = wait_for(
            "the status moving on after the restart",
            lambda: moved_on(kubectl, "victim", second["lastRun"]["id"]),
        )
        # It saw no failure: the field it cannot keep is gone, not kept or rewritten.
        assert "lastFailureTime" not in after
        kubectl("annotate", "ct", "victim", "crontask.dev/run-now=2", "--overwrite")
        wait_for("the second manual run", lambda: manual_runs(crontask) == 2)
        assert status(kubectl, "victim")["lastRunNow"] == "2"
        assert "status write failed" not in crontask.log_path.read_text(errors="replace")
    finally:
        crontask.stop()
