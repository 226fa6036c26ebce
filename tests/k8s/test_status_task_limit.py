"""A CronTask refused by ``--max-tasks`` is not an invalid spec: the source is full, and the
spec may be fine. Its Ready and Stalled conditions and its Warning Event say ``TaskLimit``, in
the refusal's own words, where they said ``InvalidSpec`` and "spec is invalid: ..." (a user
looked for an error in a spec that had none)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client

from reconciler.core.desired import DesiredState
from reconciler.core.status import (
    ObjectRef,
    StatusInputs,
    TaskState,
    derive_status,
    task_state,
)
from reconciler.sources.kubernetes import KubernetesSource
from reconciler.sources.kubernetes_bound import refusal
from tests.helpers import wait_for
from tests.k8s.emulator import Emulator
from tests.k8s.test_source_kubernetes import create
from tests.k8s.test_status_derive import T0
from tests.k8s.test_status_report_recreated import Reporting, events_of, stored

REF = ObjectRef("ops", "m3", "uid-m3", "1", 1)


def next_second(after: dict[str, Any]) -> None:
    """Wait until the API server's clock (second-grained creationTimestamps) is past the
    creation of ``after``: the next object created is the newer one by its age."""
    created = str(after["metadata"]["creationTimestamp"])
    wait_for(
        "the next second",
        lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") > created,
        timeout=5.0,
    )


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in status["conditions"]}


def test_a_crontask_past_the_bound_says_task_limit_not_invalid_spec() -> None:
    desired = DesiredState(tasks={}, errors=(refusal(REF, 2),))
    status = derive_status({}, StatusInputs(1, task_state(REF.key, desired, None)), T0)
    found = conditions(status)
    assert {kind: found[kind][:2] for kind in found} == {
        "Ready": ("False", "TaskLimit"),
        "Stalled": ("True", "TaskLimit"),
    }
    message = found["Ready"][2]
    assert message.startswith("would take this source past its bound of 2 tasks (--max-tasks)")
    assert "invalid" not in message
    assert message.endswith("; nothing is scheduled")


def test_a_spec_error_quoting_the_refusals_words_is_still_invalid_spec() -> None:
    quoted = "spec.schedule: 'would take this source past its bound of 2 tasks (--max-tasks)'"
    status = derive_status({}, StatusInputs(1, TaskState(invalid=quoted)), T0)
    ready = conditions(status)["Ready"]
    assert ready[:2] == ("False", "InvalidSpec")
    assert ready[2].startswith("spec is invalid: spec.schedule: ")


@pytest.fixture
def source(k8s_api_client: Any) -> Iterator[KubernetesSource]:
    src = KubernetesSource(k8s_api_client, "default", max_tasks=1)
    yield src
    src.stop()


@pytest.fixture
def reporting(k8s_api_client: Any, source: KubernetesSource) -> Iterator[Reporting]:
    harness = Reporting(k8s_api_client, source)
    yield harness
    harness.stop()


@pytest.mark.usefixtures("real_crd")
def test_the_refused_crontasks_status_and_event_say_task_limit(
    k8s_api_client: Any, emulator: Emulator, source: KubernetesSource, reporting: Reporting
) -> None:
    api: Any = client.CustomObjectsApi(k8s_api_client)
    next_second(create(api, "held", schedule="0 0 1 1 *"))
    newer = create(api, "newer", schedule="0 0 1 1 *")
    assert source.start(5.0)
    reporting.run_pass(full=True)
    reporting.flush()
    ready = conditions(stored(emulator, "newer")["status"])["Ready"]
    assert ready[:2] == ("False", "TaskLimit")
    assert ready[2].startswith("would take this source past its bound of 1 task (--max-tasks)")
    (event,) = events_of(emulator, newer["metadata"]["uid"])
    assert (event["type"], event["reason"]) == ("Warning", "TaskLimit")
    assert event["message"].startswith("would take this source past its bound of 1 task")
    held = conditions(stored(emulator, "held")["status"])["Ready"]
    assert held[:2] == ("True", "Scheduled")  # the older one holds its place
