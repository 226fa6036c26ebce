"""``spec.job.spec`` checked as the API server would check a JobSpec, with ``file:line:col``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from reconciler.core import jobspec
from reconciler.core.jobspec import KEYWORDS, MAX_PROBLEMS, REFUSED, problems
from reconciler.sources.documents import parse_text
from tests.helpers import crontask_cli
from tests.jobs.jobspec_schema import generate as generate_schema
from tests.jobs.jobspec_schema import render

ROOT = Path(__file__).resolve().parents[2]
MAIN = {"name": "main", "image": "busybox", "command": ["sh", "-c", "true"]}


def spec(**pod: Any) -> dict[str, Any]:
    return {"template": {"spec": {"containers": [MAIN], **pod}}}


def test_the_vendored_schema_is_fresh() -> None:
    committed = (ROOT / "reconciler" / "core" / jobspec.SCHEMA_FILE).read_text()
    assert committed == render(generate_schema()), (
        "regenerate: .venv/bin/python -m tests.jobs.jobspec_schema > "
        "reconciler/core/data/jobspec-batch-v1.json"
    )


def test_the_schema_uses_only_what_the_checker_knows_and_is_not_recursive() -> None:
    definitions = jobspec.schema()["definitions"]

    def walk(node: dict[str, Any], seen: tuple[str, ...]) -> None:
        assert set(node) <= KEYWORDS, set(node) - KEYWORDS
        if "$ref" in node:
            assert node["$ref"] not in seen, f"recursive: {(*seen, node['$ref'])}"
            walk(definitions[node["$ref"]], (*seen, node["$ref"]))
        children = [*node.get("properties", {}).values(), *node.get("oneOf", ())]
        children += [
            node[k] for k in ("items", "additionalProperties") if isinstance(node.get(k), dict)
        ]
        for child in children:
            walk(child, seen)

    walk({"$ref": jobspec.schema()["root"]}, ())


VALID = {
    "minimal": spec(),
    "a CronJob's jobTemplate.spec": {
        "backoffLimit": 2,
        "activeDeadlineSeconds": 600,
        "ttlSecondsAfterFinished": 3600,
        "suspend": False,
        "managedBy": "kubernetes.io/job-controller",
        "podFailurePolicy": {
            "rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]
        },
        "template": {
            "metadata": {
                "labels": {"app": "report", "example.com/tier": "Batch_1", "empty": ""},
                "annotations": {"a": "b", "example.com/note": "any text at all"},
            },
            "spec": {
                "restartPolicy": "Never",  # a podFailurePolicy needs Never
                "serviceAccountName": "reporter",
                "nodeSelector": {"gpu": "true"},
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
                "initContainers": [{"name": "init", "image": "busybox"}],
                "containers": [
                    {
                        **MAIN,
                        "env": [
                            {"name": "A", "value": "1"},
                            {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                        ],
                        "resources": {"limits": {"cpu": "500m", "memory": 268435456}},
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        "ports": [{"containerPort": 8080}],
                    }
                ],
            },
        },
    },
    "nulls for optional fields": {**spec(), "backoffLimit": None},
    # The Kubernetes docs' own example: a pod condition's status is left out (the server sets
    # True before it validates), though the OpenAPI lists it as required.
    "a podFailurePolicy of the Kubernetes docs": {
        **spec(restartPolicy="Never"),
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]},
                },
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                {"action": "Count", "onPodConditions": [{"type": "Ready", "status": None}]},
            ]
        },
    },
}


@pytest.mark.parametrize("name", VALID)
def test_valid_specs(name: str) -> None:
    assert problems(VALID[name]) == []


INVALID: dict[str, tuple[dict[str, Any], list[tuple[str, str | None]]]] = {
    "no template": ({"backoffLimit": 1}, [("template", "Required value")]),
    "misspelt field": (
        spec(restartPolicyy="Never"),
        [("template.spec.restartPolicyy", "unknown field (did you mean 'restartPolicy'?)")],
    ),
    "restartPolicy Always": (
        spec(restartPolicy="Always"),
        [
            (
                "template.spec.restartPolicy",
                'Unsupported value: "Always": supported values: "OnFailure", "Never"',
            )
        ],
    ),
    "restartPolicy misspelt": (
        spec(restartPolicy="Nevr"),
        [
            (
                "template.spec.restartPolicy",
                'Unsupported value: "Nevr": supported values: "OnFailure", "Never"',
            )
        ],
    ),
    "no image": (
        {"template": {"spec": {"containers": [{"name": "main"}]}}},
        [("template.spec.containers[0].image", "Required value")],
    ),
    "no containers": (
        {"template": {"spec": {"containers": []}}},
        [("template.spec.containers", "Required value")],
    ),
    "container name": (
        {"template": {"spec": {"containers": [{**MAIN, "name": "Main_1"}]}}},
        [("template.spec.containers[0].name", None)],
    ),
    "duplicate names": (
        {"template": {"spec": {"initContainers": [MAIN], "containers": [MAIN]}}},
        [("template.spec.containers[0].name", 'Duplicate value: "main"')],
    ),
    "a string for a number": (
        {**spec(), "backoffLimit": "3"},
        [("backoffLimit", "Invalid value: must be an integer (got a string)")],
    ),
    "a boolean for a number": (
        {**spec(), "parallelism": True},
        [("parallelism", "Invalid value: must be an integer (got a boolean)")],
    ),
    "int32 overflow": (
        {**spec(), "backoffLimit": 2**31},
        [("backoffLimit", "Invalid value: 2147483648: out of range for int32")],
    ),
    "negative count": (
        {**spec(), "backoffLimit": -1},
        [("backoffLimit", "Invalid value: -1: must be greater than or equal to 0")],
    ),
    "zero deadline": (
        {**spec(), "activeDeadlineSeconds": 0},
        [("activeDeadlineSeconds", "Invalid value: 0: must be greater than 0")],
    ),
    "int-or-string": (
        {"template": {"spec": {"containers": [{**MAIN, "resources": {"limits": {"cpu": [1]}}}]}}},
        [
            (
                "template.spec.containers[0].resources.limits.cpu",
                "Invalid value: must be a string or a number (got a list)",
            )
        ],
    ),
    "a number for a string, not shown (an env value may be a secret)": (
        {
            "template": {
                "spec": {"containers": [{**MAIN, "env": [{"name": "PIN", "value": 73194628}]}]}
            }
        },
        [
            (
                "template.spec.containers[0].env[0].value",
                "Invalid value: must be a string (got a number)",
            )
        ],
    ),
    # What would keep a run from ever ending, or end its Job before crontask reads it.
    "suspended": (
        {**spec(), "suspend": True},
        [("suspend", f"Forbidden: {REFUSED['suspend']}")],
    ),
    "managed by another controller": (
        {**spec(), "managedBy": "example.com/nobody"},
        [("managedBy", f"Forbidden: {REFUSED['managedBy']}")],
    ),
    # Kubernetes' idiom for a paused Job: no pod ever runs, and the Job never ends.
    "parallelism 0": (
        {**spec(), "parallelism": 0},
        [("parallelism", f"Forbidden: {REFUSED['parallelism']}")],
    ),
    "pod labels the API server refuses": (
        {
            "template": {
                "metadata": {
                    "labels": {"team name": "x", "team": "data & analytics"},
                    "annotations": {"Example.com/a": "b"},
                },
                "spec": {"containers": [MAIN]},
            }
        },
        [
            ("template.metadata.labels.team name", None),
            ("template.metadata.labels.team", None),
            ("template.metadata.annotations.Example.com/a", None),
        ],
    ),
    "a list for an object": (
        {"template": []},
        [("template", "Invalid value: must be an object (got a list)")],
    ),
}


@pytest.mark.parametrize("name", INVALID)
def test_invalid_specs(name: str) -> None:
    given, expected = INVALID[name]
    found = [(jobspec.dotted(p.path), p.message) for p in problems(given)]
    assert [path for path, _ in found] == [path for path, _ in expected]
    for (_, message), (_, wanted) in zip(found, expected, strict=True):
        if wanted is not None:
            assert message == wanted


def test_hostile_specs_are_bounded() -> None:
    started = time.monotonic()
    huge = {"template": {"spec": {"containers": [{**MAIN, "args": ["x"] * 100_000}]}}}
    (problem,) = problems(huge)
    assert "too large" in problem.message
    many = {"template": {"spec": {"containers": [{**MAIN, f"bad{i}": 1} for i in range(200)]}}}
    assert len(problems(many)) == MAX_PROBLEMS
    assert time.monotonic() - started < 5  # generous: it is milliseconds


TASK = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata:
  name: report
spec:
  schedule: "0 3 * * *"
  job:
    spec:
      backoffLimit: 2
      template:
        spec:
          restartPolicy: Nevr
          containers:
            - name: main
              command: ["sh", "-c", "echo hi"]
"""


def test_validate_points_at_each_field() -> None:
    parsed = parse_text(TASK, "report.yaml")
    assert [str(e) for e in parsed.errors] == [
        "report.yaml:12:11: spec.job.spec.template.spec.restartPolicy: Unsupported value: "
        '"Nevr": supported values: "OnFailure", "Never"',
        "report.yaml:14:15: spec.job.spec.template.spec.containers[0].image: Required value",
    ]


NEVER_ENDS = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata:
  name: report
spec:
  schedule: "0 3 * * *"
  timeoutSeconds: 60
  job:
    spec:
      suspend: true
      managedBy: example.com/nobody
      template:
        spec:
          containers:
            - {name: main, image: busybox}
"""


def test_what_would_keep_a_run_from_ending_is_a_definition_error_at_its_field() -> None:
    parsed = parse_text(NEVER_ENDS, "report.yaml")
    assert [str(e).split(": Forbidden: ")[0] for e in parsed.errors] == [
        "report.yaml:10:7: spec.job.spec.suspend",
        "report.yaml:11:7: spec.job.spec.managedBy",
    ]
    suspend, managed = (str(e) for e in parsed.errors)
    assert "never starts" in suspend
    assert "set spec.suspend" in suspend
    assert "another controller" in managed
    # Their harmless values stay allowed: a CronJob's jobTemplate may spell the defaults out.
    fine = NEVER_ENDS.replace("true", "false").replace(
        "example.com/nobody", "kubernetes.io/job-controller"
    )
    assert len(parse_text(fine, "r.yaml").definitions) == 1


LABELLED = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata:
  name: report
spec:
  schedule: "0 3 * * *"
  job:
    metadata:
      labels:
        {labels}
      annotations:
        {annotations}
    spec:
      template:
        spec:
          containers:
            - {{name: main, image: busybox}}
"""


@pytest.mark.parametrize(
    ("labels", "annotations", "wrong"),
    [
        ('"team name": data', "a: b", "spec.job.metadata.labels.team name: Invalid value"),
        ("team: data & analytics", "a: b", "spec.job.metadata.labels.team: Invalid value"),
        (f"team: {'x' * 64}", "a: b", "at most 63 characters"),
        ("team: -data", "a: b", "spec.job.metadata.labels.team: Invalid value"),
        (f"{'x' * 64}: a", "a: b", "name part must consist of"),
        ("Example.com/team: a", "a: b", "prefix part must be a lowercase RFC 1123 subdomain"),
        (f"{'a' * 254}/team: a", "a: b", "prefix part must be"),
        ("/team: a", "a: b", "prefix part must be"),
        ("team: a", '"a note": b', "spec.job.metadata.annotations.a note: Invalid value"),
        ("team: a", "crontask.dev/a: b", "keys under crontask.dev/ are set by crontask"),
        # A newline at the end: Python's `$` matches before it, Go's (the API server's) not.
        ('team: "data\\n"', "a: b", "spec.job.metadata.labels.team: Invalid value"),
        ('"team\\n": a', "a: b", "name part must consist of"),
        ('"example.com\\n/team": a', "a: b", "prefix part must be"),
        ("team: a", '"note\\n": b', "name part must consist of"),
    ],
)
def test_job_labels_and_annotation_keys_are_checked_as_the_api_server_does(
    labels: str, annotations: str, wrong: str
) -> None:
    """A label the API server would refuse fails every run with a 422: it is a definition
    error instead, at its key."""
    parsed = parse_text(LABELLED.format(labels=labels, annotations=annotations), "r.yaml")
    (error,) = parsed.errors
    assert wrong in str(error)
    assert str(error).startswith("r.yaml:10:9:" if "labels" in wrong else "r.yaml:")


def test_job_labels_the_api_server_takes_are_taken() -> None:
    labels = f'{{app: report, example.com/tier: Batch_1.x, empty: "", {"a" * 63}: {"b" * 63}}}'
    annotations = f'{{example.com/note: "any text, at all", {"p" * 253}/{"n" * 63}: x}}'
    parsed = parse_text(LABELLED.format(labels=labels, annotations=annotations), "r.yaml")
    assert parsed.errors == []


def test_crontask_validate_says_file_line_col(tmp_path: Path) -> None:
    (tmp_path / "report.yaml").write_text(
        TASK.replace("Nevr", "Never").replace("command", "comand")
    )
    proc = crontask_cli("validate", str(tmp_path))
    assert proc.returncode == 1
    where = f"{tmp_path / 'report.yaml'}:15:15"
    field = "spec.job.spec.template.spec.containers[0].comand"
    assert f"{where}: {field}: unknown field (did you mean 'command'?)" in proc.stdout


def test_schema_and_crd_keep_the_jobspec_whole() -> None:
    schema = json.loads((ROOT / "schemas" / "crontask.schema.json").read_text())
    job = schema["$defs"]["JobAction"]["properties"]["spec"]
    assert job["type"] == "object"
    assert job["additionalProperties"] is True


def test_the_readme_example_moves_a_cronjob_unchanged() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = [b.split("```")[0] for b in readme.split("```yaml\n")[1:]]
    cronjob = next(yaml.safe_load(b) for b in blocks if "kind: CronJob" in b)
    crontask = next(b for b in blocks if "kind: CronTask" in b and "nightly-report" in b)
    parsed = parse_text(crontask, "README.md")
    assert parsed.errors == []
    (definition,) = parsed.definitions
    job = definition.task.spec.job
    assert job is not None
    assert job.spec == cronjob["spec"]["jobTemplate"]["spec"]
    assert job.metadata.labels == cronjob["spec"]["jobTemplate"]["metadata"]["labels"]
    kubernetes_validate.validate(cronjob, "1.32", strict=True)  # a real CronJob
