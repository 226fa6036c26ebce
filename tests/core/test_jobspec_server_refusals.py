"""JobSpecs the API server refuses although the schema takes them, refused when the definition
is read (``crontask validate`` says ``file:line:col``) instead of at every run with a 422:
ephemeral containers in a template, a pod failure policy with pods restarted in place, a mount
of an undeclared volume, a request above its limit, and more than 256 KiB of annotations.
The rules and words are pkg/apis/core/validation's and pkg/apis/batch/validation's."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.jobs import job_manifest
from reconciler.core.jobspec import (
    CRONTASK_JOB_ANNOTATIONS,
    MAX_ANNOTATIONS_BYTES,
    annotations_size_problem,
    dotted,
    problems,
    quantity,
)
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.sources.documents import parse_text
from tests.helpers import crontask_cli

MAIN = {"name": "main", "image": "busybox"}
POLICY = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]}


def spec(container: dict[str, Any] | None = None, **pod: Any) -> dict[str, Any]:
    return {"template": {"spec": {"containers": [container or MAIN], **pod}}}


def limited(requests: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    return spec({**MAIN, "resources": {"requests": requests, "limits": limits}})


def annotated(size: int, char: str = "x") -> dict[str, Any]:
    """A spec whose template has one annotation of ``size`` bytes, key and value."""
    body = spec()
    value = char * ((size - len("note")) // len(char.encode()))
    body["template"]["metadata"] = {"annotations": {"note": value}}
    return body


def found(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(dotted(p.path), p.message) for p in problems(body)]


REFUSED = {
    "ephemeral containers": (
        spec(ephemeralContainers=[{"name": "debug", "image": "busybox"}]),
        "template.spec.ephemeralContainers",
        "Forbidden: ephemeral containers not allowed in pod template",
    ),
    "podFailurePolicy with OnFailure": (
        {**spec(restartPolicy="OnFailure"), "podFailurePolicy": POLICY},
        "template.spec.restartPolicy",
        'Invalid value: "OnFailure": only "Never" is supported when podFailurePolicy is specified',
    ),
    "a policy without rules is one too": (
        {**spec(restartPolicy="OnFailure"), "podFailurePolicy": {"rules": []}},
        "template.spec.restartPolicy",
        'Invalid value: "OnFailure": only "Never" is supported when podFailurePolicy is specified',
    ),
    "cpu request above its limit": (
        limited({"cpu": "2"}, {"cpu": "1"}),
        "template.spec.containers[0].resources.requests.cpu",
        'Invalid value: "2": must be less than or equal to cpu limit of 1',
    ),
    "1001m above 1": (
        limited({"cpu": "1001m"}, {"cpu": 1}),
        "template.spec.containers[0].resources.requests.cpu",
        'Invalid value: "1001m": must be less than or equal to cpu limit of 1',
    ),
    "memory, binary above decimal": (
        limited({"memory": "1Gi"}, {"memory": "1G"}),
        "template.spec.containers[0].resources.requests.memory",
        'Invalid value: "1Gi": must be less than or equal to memory limit of 1G',
    ),
    "template annotations over 256 KiB": (
        annotated(MAX_ANNOTATIONS_BYTES + 1),
        "template.metadata.annotations",
        "Too long: may not be more than 262144 bytes",
    ),
    "bytes, not characters": (
        annotated(MAX_ANNOTATIONS_BYTES + 4, char="é"),  # 2 bytes each: 131 076 characters
        "template.metadata.annotations",
        "Too long: may not be more than 262144 bytes",
    ),
}


@pytest.mark.parametrize("name", REFUSED)
def test_what_the_api_server_refuses_is_refused_at_its_field(name: str) -> None:
    body, path, message = REFUSED[name]
    assert found(body) == [(path, message)]


ACCEPTED = {
    "podFailurePolicy with Never": {**spec(restartPolicy="Never"), "podFailurePolicy": POLICY},
    # crontask sets Never when restartPolicy is left out (core.jobs), so the server sees Never.
    "podFailurePolicy, restartPolicy left out": {**spec(), "podFailurePolicy": POLICY},
    "a null podFailurePolicy is none": {
        **spec(restartPolicy="OnFailure"),
        "podFailurePolicy": None,
    },
    "no ephemeral containers": spec(ephemeralContainers=[]),
    "a mount of a declared volume": spec(
        {**MAIN, "volumeMounts": [{"name": "data", "mountPath": "/d"}]},
        volumes=[{"name": "data", "emptyDir": {}}],
    ),
    # The server refuses it after the admission webhooks ran, and one may add the volume.
    "a mount of a volume a webhook may add": spec(
        {**MAIN, "volumeMounts": [{"name": "vault-secrets", "mountPath": "/vault"}]}
    ),
    "500m under 1": limited({"cpu": "500m"}, {"cpu": "1"}),
    "equal quantities written differently": limited(
        {"cpu": "0.1", "memory": "1024Mi"}, {"cpu": "100m", "memory": "1Gi"}
    ),
    "a request without a limit": limited({"cpu": "64"}, {"memory": "1Gi"}),
    "a number under a string": limited({"memory": 268435456}, {"memory": "256Mi"}),
    "annotations of exactly 256 KiB": annotated(MAX_ANNOTATIONS_BYTES),
}


@pytest.mark.parametrize("name", ACCEPTED)
def test_what_the_api_server_takes_is_taken(name: str) -> None:
    assert found(ACCEPTED[name]) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Fraction(1, 2)),
        ("1", 1),
        (".5", Fraction(1, 2)),
        ("2.", 2),
        ("1Ki", 1024),
        ("1.5Mi", 1536 * 1024),
        ("1k", 1000),
        ("1E", 10**18),
        ("1Ei", 2**60),
        ("1e3", 1000),
        ("1E3", 1000),
        ("25n", Fraction(25, 10**9)),
        ("7u", Fraction(7, 10**6)),
        (0.25, Fraction(1, 4)),
        (3, 3),
        ("1KB", None),
        ("one", None),
        ("", None),
        (True, None),
        ("1e99999", None),
        ("1" * 6000, None),  # int() refuses over 4 300 digits: its ValueError was the message
        ("1" * 64, int("1" * 64)),
    ],
)
def test_quantities_are_read_exactly(text: Any, value: Fraction | int | None) -> None:
    assert quantity(text) == value


def test_a_quantity_of_thousands_of_digits_is_no_crash() -> None:
    many = "1" * 6000
    resources = {"requests": {"cpu": many}, "limits": {"cpu": many + "0"}}
    container = {"name": "a", "image": "busybox", "resources": resources}
    spec = {"template": {"spec": {"containers": [container]}}}
    assert all("digits" not in p.message for p in problems(spec)), problems(spec)


TASK = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata:
  name: report
spec:
  schedule: "0 3 * * *"
  job:
    spec:
      podFailurePolicy:
        rules: [{action: FailJob, onExitCodes: {operator: In, values: [42]}}]
      template:
        spec:
          restartPolicy: OnFailure
          ephemeralContainers:
            - {name: debug, image: busybox}
          containers:
            - name: main
              image: busybox
              resources:
                requests: {cpu: "2"}
                limits: {cpu: 500m}
              volumeMounts:
                - {name: data, mountPath: /data}
"""


def test_validate_names_each_refusal_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "report.yaml").write_text(TASK)
    proc = crontask_cli("validate", str(tmp_path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    where = f"{tmp_path / 'report.yaml'}"
    job = "spec.job.spec.template.spec"
    for line in [
        f'{where}:13:11: {job}.restartPolicy: Invalid value: "OnFailure": only "Never" is '
        "supported when podFailurePolicy is specified",
        f"{where}:14:11: {job}.ephemeralContainers: Forbidden: ephemeral containers not allowed "
        "in pod template",
        f'{where}:20:28: {job}.containers[0].resources.requests.cpu: Invalid value: "2": must be '
        "less than or equal to cpu limit of 500m",
    ]:
        assert line in proc.stdout, proc.stdout


def test_the_loader_refuses_the_definition() -> None:
    parsed = parse_text(TASK, "report.yaml")
    assert parsed.definitions == []
    assert len(parsed.errors) == 3


def with_job_annotations(values: str) -> str:
    return TASK.split("  job:\n")[0] + (
        "  job:\n    metadata:\n      annotations:\n"
        + values
        + "    spec:\n      template:\n        spec:\n"
        + "          containers: [{name: main, image: busybox}]\n"
    )


def test_the_jobs_own_annotations_are_bounded_in_all() -> None:
    # Each value is within its own bound (32 KiB); nine together are over the server's 256 KiB.
    parsed = parse_text(with_job_annotations(f"        a: {'x' * 30_000}\n" * 1), "r.yaml")
    assert parsed.errors == []
    values = "".join(f"        a{i}: {'x' * 30_000}\n" for i in range(9))
    (error,) = parse_text(with_job_annotations(values), "report.yaml").errors
    limit = MAX_ANNOTATIONS_BYTES - CRONTASK_JOB_ANNOTATIONS
    assert error.message == (
        f"spec.job.metadata.annotations: Too long: may not be more than {limit} bytes "
        "(crontask adds its own to each Job)"
    ), error.message


def at_most(size: int) -> str:
    """Job annotations of ``size`` bytes in all, each value within its own 32 KiB."""
    lines, left, i = [], size, 0
    while left > 0:
        key = f"a{i}"
        value = "x" * min(30_000, left - len(key))
        lines.append(f"        {key}: {value}\n")
        left -= len(key) + len(value)
        i += 1
    return "".join(lines)


def test_annotations_at_the_bound_make_jobs_the_server_takes() -> None:
    # At the bound, with crontask's own annotations of the longest task key and run added to
    # each Job, the Job's annotations are within the server's 256 KiB.
    limit = MAX_ANNOTATIONS_BYTES - CRONTASK_JOB_ANNOTATIONS
    name, namespace = "n" * 63, "s" * 63
    named = f"name: {name}\n  namespace: {namespace}"
    text = with_job_annotations(at_most(limit)).replace("name: report", named)
    (definition,) = parse_text(text, "r.yaml").definitions
    at = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    record = RunRecord(
        run_id(definition.key, at), definition.key, at, Trigger.MANUAL, RunStatus.RUNNING, 99
    )
    job = job_manifest(definition, record, namespace=namespace, name="j", env={})
    assert annotations_size_problem(job["metadata"]["annotations"]) is None
    assert parse_text(with_job_annotations(at_most(limit + 1)), "r.yaml").errors != []
