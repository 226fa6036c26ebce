"""Conditions other controllers set on a CronTask's status survive crontask's status writes.

``status.conditions`` is a list-map keyed by type, and crontask writes the status with a merge
patch, which replaces a list whole: a condition crontask leaves out of its list is deleted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reconciler.core.status import (
    FOREIGN_CONDITIONS_MAX,
    StatusInputs,
    TaskState,
    derive_status,
    merge_patch,
)

T0 = datetime(2027, 1, 1, 12, 0, 0, tzinfo=UTC)
INPUTS = StatusInputs(generation=3, state=TaskState(scheduled=True, describe="@daily (UTC)"))


def condition(kind: str, status: str = "True", **more: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "observedGeneration": 2,
        "lastTransitionTime": "2026-12-01T00:00:00Z",
        "reason": "Checked",
        "message": f"{kind} says so",
        **more,
    }


POLICY = condition("example.com/PolicyChecked")
BACKUP = condition("BackedUp", "False", extra={"nested": ["kept", "as is"]})


def types(status: dict[str, Any]) -> list[str]:
    return [c["type"] for c in status["conditions"]]


def test_conditions_of_other_types_are_kept_unchanged_after_crontasks() -> None:
    # Crontask's own first, then the others in their stored order, whatever it was.
    current = {"conditions": [POLICY, condition("Ready", "False"), BACKUP, condition("Stalled")]}
    status = derive_status(current, INPUTS, T0)
    assert types(status) == ["Ready", "Stalled", "example.com/PolicyChecked", "BackedUp"]
    assert status["conditions"][2:] == [POLICY, BACKUP]
    # Crontask's own are still its own to say.
    assert status["conditions"][0]["status"] == "True"
    assert status["conditions"][1]["status"] == "False"


def test_a_status_with_foreign_conditions_is_not_written_again() -> None:
    first = derive_status({"conditions": [POLICY]}, INPUTS, T0)
    # What crontask wrote, read back: nothing to change, so no write (and no loop on its own
    # watch event), and the other controller's condition was never removed.
    assert merge_patch(first, derive_status(first, INPUTS, T0 + timedelta(hours=1))) == {}
    assert POLICY in first["conditions"]


def test_at_most_a_bound_of_foreign_conditions_is_kept_the_first_ones() -> None:
    many = [condition(f"example.com/Check{i:04d}") for i in range(5000)]
    status = derive_status({"conditions": many}, INPUTS, T0)
    assert types(status) == ["Ready", "Stalled"] + [
        f"example.com/Check{i:04d}" for i in range(FOREIGN_CONDITIONS_MAX)
    ]


@pytest.mark.parametrize(
    "stored",
    [
        [
            None,
            "Ready",
            5,
            [],
            {"status": "True"},
            {"type": 7},
            POLICY,
            condition(POLICY["type"], "False"),
        ],
        {"type": "Ready"},
        "conditions",
        42,
        None,
    ],
    ids=["junk entries and a repeated type", "a mapping", "a string", "a number", "null"],
)
def test_what_no_api_server_would_store_is_left_out_without_failing(stored: Any) -> None:
    status = derive_status({"conditions": stored}, INPUTS, T0)
    expected = ["Ready", "Stalled"]
    if isinstance(stored, list):
        expected.append(POLICY["type"])  # the first of the type
        assert status["conditions"][2] == POLICY
    assert types(status) == expected
