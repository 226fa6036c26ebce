"""What someone else does to a CronTask's status, and a spec with several errors: the real
``crontask run --kubernetes`` against the emulator, driven with kubectl.

- A status edited by someone else (``kubectl patch --subresource=status``) is put right at once
  (before: at the task's next run, or the resync 5 minutes later), and crontask's own write
  coming back on its watch writes nothing more: counted at the emulator, no storm.
- A spec with two errors says both in its conditions and its ``InvalidSpec`` Event (before:
  the first alone)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_for
from tests.k8s.conftest import REAL_CRD
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import Kubectl
from tests.k8s.test_kubectl_e2e import Crontask, condition, events_of, manifest
from tests.k8s.test_status_lost_run_e2e import stored_status

pytestmark = pytest.mark.e2e

STATUS = "/apis/crontask.dev/v1alpha1/namespaces/default/crontasks/{}/status"
FOREIGN = {"nextScheduleTime": "1999-01-01T00:00:00Z", "activeCount": 7}
SCHEDULE = "spec.schedule: minute field: 61 is out of range 0-59"
ZONE = "spec.timeZone: unknown time zone 'Mars/Olympus'"


def status_writes(emulator: Emulator, name: str) -> int:
    path = STATUS.format(name)
    return sum(1 for method, at in emulator.requests if method == "PATCH" and at == path)


def put_right(emulator: Emulator, name: str) -> dict[str, Any] | None:
    """The status, once it is crontask's again (its activeCount and nextScheduleTime)."""
    current = stored_status(emulator, name)
    if current.get("activeCount") != 0 or current.get("nextScheduleTime") in (
        None,
        "1999-01-01T00:00:00Z",
    ):
        return None
    return current


def edit(kubectl: Kubectl, name: str) -> None:
    body = json.dumps({"status": FOREIGN})
    kubectl("patch", "ct", name, "--subresource=status", "--type=merge", "-p", body)


@pytest.mark.slow  # a crontask start, and kubectl a dozen times
def test_a_status_edited_by_someone_else_is_put_right_without_a_storm(
    kubectl: Kubectl, emulator: Emulator, tmp_path: Path
) -> None:
    crontask = Crontask(tmp_path, emulator.write_kubeconfig(tmp_path / "kubeconfig"))
    kubectl("apply", "-f", str(REAL_CRD))
    for name in ("k9", "other"):
        kubectl("apply", "-f", "-", stdin=manifest(name, "0 3 * * *", ["true"]))
    try:
        crontask.start()
        wait_for("the first statuses", lambda: all(put_right(emulator, n) for n in ("k9", "other")))

        writes = status_writes(emulator, "k9")
        edit(kubectl, "k9")
        before = wait_for("the edit put right", lambda: put_right(emulator, "k9"))
        # The edit's own write, and one of crontask's that puts it right.
        assert status_writes(emulator, "k9") == writes + 2

        # crontask's own write came back on its watch, before each of these edits of another
        # object and its correction (one watch, one pass at a time, in order): nothing more of
        # k9's is written, however many of its own writes come back.
        for _ in range(2):
            edit(kubectl, "other")
            wait_for("the other edit put right", lambda: put_right(emulator, "other"))
        assert status_writes(emulator, "k9") == writes + 2
        assert stored_status(emulator, "k9") == before
    finally:
        crontask.stop()


@pytest.mark.slow  # a crontask start
def test_every_spec_error_is_said(kubectl: Kubectl, emulator: Emulator, tmp_path: Path) -> None:
    crontask = Crontask(tmp_path, emulator.write_kubeconfig(tmp_path / "kubeconfig"))
    kubectl("apply", "-f", str(REAL_CRD))
    doc = json.loads(manifest("two", "61 * * * *", ["true"]))
    doc["spec"]["timeZone"] = "Mars/Olympus"
    kubectl("create", "-f", "-", stdin=json.dumps(doc))
    try:
        crontask.start()
        said = f"spec is invalid: {SCHEDULE}; {ZONE}"
        ready = wait_for("the Ready condition", lambda: condition(kubectl, "two") or None)
        assert ready["reason"] == "InvalidSpec"
        assert ready["message"] == f"{said}; nothing is scheduled"
        assert condition(kubectl, "two", "Stalled")["message"] == ready["message"]
        wait_for("the InvalidSpec Event", lambda: said in events_of(kubectl, "two"))
    finally:
        crontask.stop()
