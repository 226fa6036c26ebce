"""A spec with several errors says them all in its conditions and its ``InvalidSpec`` Event
(before: the first alone): the real ``crontask run --kubernetes`` against the emulator, driven
with kubectl (tests/core/test_status_several_errors.py for the words and their bounds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.k8s.conftest import REAL_CRD
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import Kubectl
from tests.k8s.test_kubectl_e2e import Crontask, condition, events_of, manifest

pytestmark = pytest.mark.e2e

SCHEDULE = "spec.schedule: minute field: 61 is out of range 0-59"
ZONE = "spec.timeZone: unknown time zone 'Mars/Olympus'"


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
