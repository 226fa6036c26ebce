"""A JobSpec whose lists hold null (or other non-objects) where objects belong: a problem at the
entry, as any other, never an exception out of the check (it failed every reconcile pass)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.core import jobspec
from reconciler.core.jobspec import Problem, problems
from reconciler.core.model import CronTask

MAIN = {"name": "main", "image": "busybox"}


def pod(**fields: Any) -> dict[str, Any]:
    return {"template": {"spec": {"restartPolicy": "Never", "containers": [MAIN], **fields}}}


NULL_ENTRIES = {
    "a null container": (
        pod(containers=[None]),
        ["template.spec.containers[0]: Invalid value: must be an object (got null)"],
    ),
    "a null init container": (
        pod(initContainers=[None]),
        ["template.spec.initContainers[0]: Invalid value: must be an object (got null)"],
    ),
    "a null container after a good one": (
        pod(containers=[MAIN, None]),
        ["template.spec.containers[1]: Invalid value: must be an object (got null)"],
    ),
    "a string container": (
        pod(containers=["main"]),
        ["template.spec.containers[0]: Invalid value: must be an object (got a string)"],
    ),
    "a list container": (
        pod(containers=[[]]),
        ["template.spec.containers[0]: Invalid value: must be an object (got a list)"],
    ),
    "a null volume": (
        pod(volumes=[None]),
        ["template.spec.volumes[0]: Invalid value: must be an object (got null)"],
    ),
    "a null env entry and port": (
        pod(containers=[{**MAIN, "env": [None], "ports": [None]}]),
        [
            "template.spec.containers[0].env[0]: Invalid value: must be an object (got null)",
            "template.spec.containers[0].ports[0]: Invalid value: must be an object (got null)",
        ],
    ),
    "a null toleration": (
        pod(tolerations=[None]),
        ["template.spec.tolerations[0]: Invalid value: must be an object (got null)"],
    ),
    "no JobSpec at all": (None, ["Required value"]),
}


@pytest.mark.parametrize("name", NULL_ENTRIES)
def test_a_null_entry_where_an_object_belongs_is_a_problem_at_the_entry(name: str) -> None:
    spec, expected = NULL_ENTRIES[name]
    assert [str(p) for p in problems(spec)] == expected


def test_a_null_field_is_still_a_field_left_out() -> None:
    # As the API server takes it: `volumes: null` is no volumes; a null string in a list of
    # strings is the empty string, which no rule here reads.
    assert problems(pod(volumes=None, initContainers=None)) == []
    assert problems(pod(containers=[{**MAIN, "args": [None], "env": None}])) == []


def test_the_server_rules_take_any_container_entry_without_raising() -> None:
    # They run on what the schema accepted; they must not rely on it to stay up.
    spec = pod(containers=[None, "x", MAIN])
    found = list(jobspec._server_rules(spec))
    assert found == [
        Problem(("template", "spec", "containers", 0), "Invalid value: must be an object"),
        Problem(("template", "spec", "containers", 1), "Invalid value: must be an object"),
    ]


def test_the_model_refuses_a_null_container_as_a_validation_error() -> None:
    document = {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": "evil", "namespace": "team-b"},
        "spec": {"schedule": "0 3 * * *", "job": {"spec": pod(containers=[None])}},
    }
    with pytest.raises(ValidationError) as caught:
        CronTask.model_validate(document)
    (error,) = caught.value.errors(include_url=False)
    assert error["loc"] == ("spec", "job", "spec")
    assert "containers[0]: Invalid value: must be an object (got null)" in error["msg"]
