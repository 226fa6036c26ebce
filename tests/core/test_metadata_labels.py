"""A CronTask's own labels and annotations, checked as the Kubernetes API server checks any
object's metadata: a folder `crontask validate` passes can be applied as CronTask resources."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.core.model import CronTask
from reconciler.sources.documents import parse_text
from reconciler.sources.messages import problems
from tests.helpers import task_doc

# Kubernetes' TotalAnnotationSizeLimitB (apimachinery's ValidateAnnotationsSize), in bytes.
ANNOTATIONS_BYTES = 256 * 1024

# Labels on line 6, annotations on line 8, each entry's key at column 5.
TASK = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata:
  name: report
  labels:
    {labels}
  annotations:
    {annotations}
spec:
  schedule: "0 3 * * *"
  command: {{args: [/bin/true]}}
"""


def _parsed(labels: str = "team: data", annotations: str = "note: x") -> list[str]:
    parsed = parse_text(TASK.format(labels=labels, annotations=annotations), "t.yaml")
    return [str(error) for error in parsed.errors]


def test_keys_and_values_kubernetes_takes_are_taken() -> None:
    labels = (
        f'{{app.kubernetes.io/name: report, example.com/team: Data_1.x, empty: "", '
        f"{'a' * 63}: {'b' * 63}, {'p' * 253}/{'n' * 63}: v}}"
    )
    annotations = (
        '{crontask.dev/run-now: "2026-11-26T00:00:00Z", example.com/note: "any text: at all", '
        f"{'a' * 63}: x}}"
    )
    assert _parsed(labels, annotations) == []


@pytest.mark.parametrize(
    ("labels", "annotations", "where", "wrong"),
    [
        ('"team name!": a', "note: x", "6:5: metadata.labels.team name!", "name part must"),
        ('"-bad": ""', "note: x", "6:5: metadata.labels.-bad", "name part must"),
        (f"{'x' * 64}: a", "note: x", "6:5: metadata.labels.xxx", "at most 63 characters"),
        ("Example.com/team: a", "note: x", "6:5: metadata.labels.Example.com/team", "prefix"),
        ("/team: a", "note: x", "6:5: metadata.labels./team", "prefix part must"),
        ("a/b/c: x", "note: x", "6:5: metadata.labels.a/b/c", "prefix part must"),
        ('team: "data eng/ops"', "note: x", "6:5: metadata.labels.team", "a valid label must"),
        ("team: -data", "note: x", "6:5: metadata.labels.team", "a valid label must"),
        ('team: ""', '"not a key": x', "8:5: metadata.annotations.not a key", "name part must"),
        ("team: a", "a/b/c: y", "8:5: metadata.annotations.a/b/c", "prefix part must"),
        ("team: a", '"": y', "8:5: metadata.annotations", "name part must"),
    ],
)
def test_each_form_the_api_server_refuses_is_refused_at_its_key(
    labels: str, annotations: str, where: str, wrong: str
) -> None:
    (error,) = _parsed(labels, annotations)
    assert error.startswith(f"t.yaml:{where}")
    assert ": Invalid value: " in error
    assert wrong in error


def test_every_bad_key_of_the_reported_repro_is_told_at_once() -> None:
    text = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata:
  name: report
  labels:
    team name!: data eng/ops
    -bad: ""
  annotations:
    not a key: x
    a/b/c: y
spec:
  schedule: "0 3 * * *"
  command: {args: [/bin/true]}
"""
    errors = [str(error) for error in parse_text(text, "t.yaml").errors]
    assert [error.split(": Invalid value")[0] for error in errors] == [
        "t.yaml:6:5: metadata.labels.team name!",
        "t.yaml:7:5: metadata.labels.-bad",
        "t.yaml:9:5: metadata.annotations.not a key",
        "t.yaml:10:5: metadata.annotations.a/b/c",
    ]


def _annotated(values: list[str]) -> dict[str, Any]:
    doc = task_doc("report")
    doc["metadata"]["annotations"] = {f"k{i}": value for i, value in enumerate(values)}
    return doc


def test_annotations_are_bounded_together_in_bytes_as_kubernetes_bounds_them() -> None:
    # Nine keys of 2 bytes; values of 2-byte characters: 256 KiB only if bytes are counted.
    room = ANNOTATIONS_BYTES - 9 * 2
    values = ["é" * 16_000] * 8 + ["x" * (room - 8 * 32_000)]
    assert CronTask.model_validate(_annotated(values)).metadata.annotations["k8"]
    with pytest.raises(ValidationError) as caught:
        CronTask.model_validate(_annotated([*values[:8], values[8] + "x"]))
    ((problem,), more) = problems(caught.value, 20)
    assert more == 0
    assert problem.loc == ("metadata", "annotations")
    assert problem.message.startswith(f"Too long: may not be more than {ANNOTATIONS_BYTES}")
    assert "(these are 262145)" in problem.message


def test_annotations_too_large_are_told_at_the_annotations_key() -> None:
    annotations = "{" + ", ".join(f"k{i}: {'é' * 16_000}" for i in range(9)) + "}"
    (error,) = _parsed(annotations=annotations)
    assert error.startswith("t.yaml:7:3: metadata.annotations: Too long: may not be more than")


def test_the_api_and_the_cluster_source_name_each_bad_key_too() -> None:
    # Both word a ValidationError with messages.problems, not with the YAML loader.
    doc = task_doc("report")
    doc["metadata"]["labels"] = {"ok": "fine", "team name": "x", "team": "a b"}
    with pytest.raises(ValidationError) as caught:
        CronTask.model_validate(doc)
    found, _ = problems(caught.value, 20)
    assert [p.loc for p in found] == [
        ("metadata", "labels", "team name"),
        ("metadata", "labels", "team"),
    ]


def test_crontask_validate_fails_a_folder_the_api_server_would_refuse(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(TASK.format(labels='"team name!": a', annotations="n: x"))
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert f"{tmp_path / 't.yaml'}:6:5: metadata.labels.team name!: Invalid value" in proc.stdout
