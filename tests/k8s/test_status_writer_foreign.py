"""A condition another controller adds to a CronTask's status survives crontask's next status
write (the runtime in process, against the emulator): the merge patch replaces the conditions
list whole, and crontask's list used to hold only Ready and Stalled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.model import API_GROUP
from tests.helpers import wait_for
from tests.k8s.emulator import Emulator
from tests.k8s.test_status_runtime import api, create, patch, ready, run_with_crontask, status_of

pytestmark = pytest.mark.usefixtures("real_crd")
__all__ = ["api"]  # a fixture

POLICY = {
    "type": "example.com/PolicyChecked",
    "status": "True",
    "observedGeneration": 1,
    "lastTransitionTime": "2026-12-01T00:00:00Z",
    "reason": "Allowed",
    "message": "the policy engine checked this task",
}


def test_a_condition_of_another_controller_survives_crontasks_status_writes(
    tmp_path: Path, kubeconfig: Path, emulator: Emulator, api: Any
) -> None:
    create(api, "rare", {"schedule": "0 0 1 1 *"})

    def body() -> None:
        wait_for("Ready", lambda: ready(emulator, "rare").get("status") == "True")
        # The other controller writes the whole list, as a merge patch must: crontask's own
        # conditions and its one after them.
        conditions = [*status_of(emulator, "rare")["conditions"], POLICY]
        api.patch_namespaced_custom_object_status(
            API_GROUP,
            VERSION,
            "default",
            PLURAL,
            "rare",
            {"status": {"conditions": conditions}},
            _content_type="application/merge-patch+json",
        )
        # A new generation: crontask writes the status again (Ready's observedGeneration).
        patch(api, "rare", {"spec": {"schedule": "0 0 2 1 *"}})
        wait_for("generation 2", lambda: ready(emulator, "rare").get("observedGeneration") == 2)
        after = status_of(emulator, "rare")["conditions"]
        assert [c["type"] for c in after] == ["Ready", "Stalled", POLICY["type"]]
        assert after[2] == POLICY

    run_with_crontask(tmp_path, kubeconfig, body)
