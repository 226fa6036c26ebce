"""The CronTask CRD: generated from the model, committed, structural, and in step with the model.

No API server runs here: ``schema_tools`` re-states offline what the server does with the
schema (structural rules, pruning, defaulting, the CEL form crontask generates), and the
documents below are checked against the model and the CRD side by side.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import ValidationError

from reconciler.core.crd import (
    CRD_NAME,
    SchemaConversionError,
    _Converter,
    crd_document,
    exactly_one_rule,
    open_api_v3_schema,
)
from reconciler.core.model import ACTION_FIELDS, CronTask
from reconciler.core.runs import DNS1123_LABEL
from tests.deploy.schema_tools import (
    apply_defaults,
    cel_violations,
    exactly_one_fields,
    openapi_validator,
    prune,
    structural_violations,
    walk,
)
from tests.helpers import task_doc

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "deploy" / "crd.yaml"
REGENERATE = (
    "deploy/crd.yaml is stale: regenerate it with `crontask crd > deploy/crd.yaml` "
    "(or `.venv/bin/python -c 'import yaml; from reconciler.core.crd import crd_document; "
    'print(yaml.safe_dump(crd_document(), sort_keys=False), end="")\' > deploy/crd.yaml`) '
    "and commit the result"
)
# The oldest Kubernetes the CRD is meant for (CEL validation rules are GA since 1.29), and the
# newest whose schemas the installed kubernetes-validate ships.
K8S_VERSIONS = ["1.30.0", kubernetes_validate.utils.latest_version()]


def schema() -> dict[str, Any]:
    return open_api_v3_schema()


def version(crd: dict[str, Any]) -> dict[str, Any]:
    versions: list[dict[str, Any]] = crd["spec"]["versions"]
    assert len(versions) == 1
    return versions[0]


def example_documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((ROOT / "examples" / "tasks").glob("*.yaml")):
        for i, document in enumerate(yaml.safe_load_all(path.read_text())):
            found.append((f"{path.name}#{i}", document))
    return found


# -- the committed copy ----------------------------------------------------------------------


def test_committed_crd_matches_the_model() -> None:
    committed = yaml.safe_load(CRD_PATH.read_text())
    assert committed == crd_document(), REGENERATE


def test_output_is_deterministic_and_fresh() -> None:
    first, second = crd_document(), crd_document()
    assert yaml.safe_dump(first, sort_keys=False) == yaml.safe_dump(second, sort_keys=False)
    first["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"].clear()
    assert crd_document() == second, "crd_document() must not share state between calls"


def test_every_node_lists_its_keywords_in_one_order() -> None:
    # So that a pydantic upgrade that reorders keywords does not make the committed copy stale.
    order = ["type", "format", "description", "default", "enum", "pattern"]
    for where, node in walk(schema()):
        present = [k for k in node if k in order]
        assert present == sorted(present, key=order.index), where


# -- what the API server requires ------------------------------------------------------------


@pytest.mark.parametrize("k8s", K8S_VERSIONS)
def test_crd_validates_against_the_kubernetes_schema(k8s: str) -> None:
    kubernetes_validate.validate(crd_document(), k8s, strict=True)


def test_the_schema_is_structural() -> None:
    assert structural_violations(schema()) == []


@pytest.mark.parametrize(
    ("bad", "complaint"),
    [
        ({"properties": {"x": {"description": "no type"}}}, "needs a single type"),
        (
            {"properties": {"x": {"type": "object", "properties": {}, "additionalProperties": {}}}},
            "mutually exclusive",
        ),
        ({"properties": {"x": {"$ref": "#/$defs/X", "type": "object"}}}, "$ref is not allowed"),
        (
            {"properties": {"x": {"type": "string", "anyOf": [{"type": "string"}]}}},
            "may not set type",
        ),
        ({"properties": {"x": {"type": "integer", "exclusiveMinimum": 0}}}, "must be a boolean"),
        ({"properties": {"x": {"type": "integer", "default": "one"}}}, "does not validate"),
        (
            {"properties": {"metadata": {"type": "object", "properties": {"labels": {}}}}},
            "restrictions of name and generateName",
        ),
        (
            {
                "properties": {
                    "metadata": {
                        "type": "object",
                        "properties": {"name": {"type": "string", "default": "x"}},
                    }
                }
            },
            "restrictions of name and generateName",
        ),
        ({"properties": {"x": {"type": "object", "additionalProperties": False}}}, "not a boolean"),
        ({"properties": {"x": {"type": "array"}}}, "one items schema"),
    ],
)
def test_the_structural_checker_catches(bad: dict[str, Any], complaint: str) -> None:
    problems = structural_violations({"type": "object", **bad})
    assert any(complaint in p for p in problems), problems


def test_root_shape() -> None:
    root = schema()
    # Names are DNS-1123 labels, as the model's (the only restriction metadata may carry).
    assert root["properties"]["metadata"] == {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 63, "pattern": DNS1123_LABEL}},
    }
    assert root["required"] == ["spec"]
    assert "additionalProperties" not in root
    assert version(crd_document())["subresources"] == {"status": {}}


def test_names() -> None:
    crd = crd_document()
    assert crd["metadata"]["name"] == CRD_NAME == "crontasks.crontask.dev"
    spec = crd["spec"]
    assert spec["group"] == "crontask.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "CronTask",
        "listKind": "CronTaskList",
        "plural": "crontasks",
        "singular": "crontask",
        "shortNames": ["ct"],
    }
    assert {k: version(crd)[k] for k in ("name", "served", "storage")} == {
        "name": "v1alpha1",
        "served": True,
        "storage": True,
    }


def test_printer_columns() -> None:
    columns = [
        (c["name"], c["type"], c["jsonPath"])
        for c in version(crd_document())["additionalPrinterColumns"]
    ]
    assert columns == [
        ("Schedule", "string", ".spec.schedule"),
        ("Suspend", "boolean", ".spec.suspend"),
        ("Ready", "string", '.status.conditions[?(@.type=="Ready")].status'),
        ("Reason", "string", '.status.conditions[?(@.type=="Ready")].reason'),  # -o wide
        ("Active", "integer", ".status.activeCount"),
        ("Last Schedule", "date", ".status.lastScheduleTime"),
        ("Last Result", "string", ".status.lastRun.result"),
        # a `date` column would render a future time as <invalid>
        ("Next Run", "string", ".status.nextScheduleTime"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]


def test_printer_columns_point_at_declared_fields() -> None:
    root = schema()
    for column in version(crd_document())["additionalPrinterColumns"]:
        # A filter picks a list's item: the path goes on in the item's schema.
        plain = re.sub(r"\[\?\(@\.[^)]*\)\]", ".[]", column["jsonPath"])
        path = plain.lstrip(".").split(".")
        if path[0] == "metadata":
            continue
        node = root
        for part in path:
            node = node["items"] if part == "[]" else node["properties"][part]
        kind = {"date": "string"}.get(column["type"], column["type"])
        assert node["type"] == kind, column


# -- CEL rules -------------------------------------------------------------------------------


def test_the_action_rule_is_built_from_action_fields() -> None:
    rules = schema()["properties"]["spec"]["x-kubernetes-validations"]
    assert rules[0]["rule"] == (
        "[has(self.command), has(self.http), has(self.job)].exists_one(x, x)"
    )
    assert exactly_one_fields(rules[0]["rule"]) == list(ACTION_FIELDS)
    for action in ACTION_FIELDS:
        assert action in rules[0]["message"]
        assert action in schema()["properties"]["spec"]["properties"], action


def test_a_new_action_extends_the_rule() -> None:
    assert exactly_one_rule((*ACTION_FIELDS, "grpc")).endswith(
        "has(self.job), has(self.grpc)].exists_one(x, x)"
    )


def test_header_rules() -> None:
    headers = schema()["properties"]["spec"]["properties"]["http"]["properties"]["headers"]
    header = headers["items"]
    assert [r["message"] for r in header["x-kubernetes-validations"]] == [
        "a header needs exactly one of value, valueFrom"
    ]
    assert exactly_one_fields(header["x-kubernetes-validations"][0]["rule"]) == [
        "value",
        "valueFrom",
    ]
    value_from = header["properties"]["valueFrom"]
    assert exactly_one_fields(value_from["x-kubernetes-validations"][0]["rule"]) == [
        "env",
        "file",
    ]


def test_every_rule_field_exists() -> None:
    for where, node in walk(schema()):
        for rule in node.get("x-kubernetes-validations", []):
            for field in exactly_one_fields(rule["rule"]):
                assert field in node["properties"], f"{where}: {field}"
                assert field not in node.get("required", []), f"{where}: {field} is required"


# -- examples and the model, side by side ----------------------------------------------------


@pytest.mark.parametrize(("name", "document"), example_documents())
def test_examples_apply_unchanged(name: str, document: dict[str, Any]) -> None:
    root = schema()
    openapi_validator(root).validate(document)
    assert prune(document, root) == document, f"{name}: fields the API server would prune"
    assert cel_violations(document, root) == []


def test_there_are_examples() -> None:
    assert len(example_documents()) >= 4


def doc(drop: tuple[str, ...] = (), **spec: Any) -> dict[str, Any]:
    document = task_doc(**spec)
    for key in drop:
        del document["spec"][key]
    return document


HTTP = {"url": "https://example.com/hook"}
POD: dict[str, Any] = {"containers": [{"name": "main", "image": "busybox"}]}
JOB = {"spec": {"backoffLimit": 0, "template": {"spec": POD}}}
ENV_HEADER = {"name": "Authorization", "valueFrom": {"env": "TOKEN"}}

VALID = {
    "minimal": doc(),
    "every spec field": doc(
        timeZone="Europe/Berlin",
        suspend=True,
        concurrencyPolicy="Replace",
        startingDeadlineSeconds=1,
        timeoutSeconds=1,
        retry={"limit": 100, "backoffSeconds": 0, "backoffMultiplier": 1, "maxBackoffSeconds": 5},
        jitterSeconds=3600,
        successfulRunsHistoryLimit=0,
        failedRunsHistoryLimit=0,
        command={"args": ["true"], "env": {"A_1": "x"}, "workingDir": "/tmp"},
    ),
    "http": doc(drop=("command",), http=HTTP),
    "http, every field": doc(
        drop=("command",),
        http={
            **HTTP,
            "method": "POST",
            "headers": [
                {"name": "Content-Type", "value": "application/json"},
                ENV_HEADER,
                {"name": "X-Token", "valueFrom": {"file": "/run/secrets/token"}},
            ],
            "body": "{}",
            "expectStatus": "200-299,304",
            "timeoutSeconds": 0.5,
        },
    ),
    "job": doc(drop=("command",), job=JOB),
    "job, every field": doc(
        drop=("command",),
        job={
            "namespace": "batch",
            "metadata": {"labels": {"team": "ops"}, "annotations": {"a/b": "c"}},
            **JOB,
        },
    ),
}

INVALID = {
    "no action": doc(drop=("command",)),
    "two actions": doc(http=HTTP),
    "no schedule": doc(drop=("schedule",)),
    "unknown field": doc(schedul="typo"),
    "unknown nested field": doc(retry={"limt": 2}),
    "policy": doc(concurrencyPolicy="Sometimes"),
    "timeout 0": doc(timeoutSeconds=0),
    "timeout not an integer": doc(timeoutSeconds=1.5),
    # The API server's schema refuses these; pydantic's lax mode read them as false, 30 and 1.
    "suspend as text": doc(suspend="off"),
    "timeout as text": doc(timeoutSeconds="30"),
    "retry limit as a switch": doc(retry={"limit": True}),
    "backoff as text": doc(retry={"limit": 1, "backoffSeconds": "5"}),
    "negative deadline": doc(startingDeadlineSeconds=-1),
    # A deadline of 0 would skip every slot; one past a year is no deadline anyone means.
    "deadline 0": doc(startingDeadlineSeconds=0),
    "deadline over a year": doc(startingDeadlineSeconds=366 * 86400),
    "timeout over a year": doc(timeoutSeconds=366 * 86400),
    "backoff over a day": doc(retry={"limit": 1, "backoffSeconds": 3.78e16}),
    "max backoff over a day": doc(retry={"limit": 1, "maxBackoffSeconds": 86401}),
    "multiplier over 10": doc(retry={"backoffMultiplier": 11}),
    "history over 1000": doc(successfulRunsHistoryLimit=1001),
    "too many args": doc(command={"args": ["true"] * 257}),
    "an argument over 32 KiB": doc(command={"args": ["echo", "x" * (32 * 1024 + 1)]}),
    "too many env entries": doc(
        command={"args": ["true"], "env": {f"V{i}": "x" for i in range(257)}}
    ),
    "schedule over 1 KiB": doc(schedule="*" + " " * 1024 + "* * * *"),
    "http body over 64 KiB": doc(drop=("command",), http={**HTTP, "body": "x" * 65537}),
    "http timeout over an hour": doc(drop=("command",), http={**HTTP, "timeoutSeconds": 3601}),
    "jitter": doc(jitterSeconds=3601),
    "retry limit": doc(retry={"limit": 101}),
    "multiplier": doc(retry={"backoffMultiplier": 0.5}),
    "negative history": doc(failedRunsHistoryLimit=-1),
    "no args": doc(command={"args": []}),
    "env not a string": doc(command={"args": ["true"], "env": {"A": ["list"]}}),
    "url": doc(drop=("command",), http={"url": "ftp://example.com"}),
    "method": doc(drop=("command",), http={**HTTP, "method": "TRACE"}),
    "expectStatus": doc(drop=("command",), http={**HTTP, "expectStatus": "2xx"}),
    "http timeout 0": doc(drop=("command",), http={**HTTP, "timeoutSeconds": 0}),
    "header name": doc(drop=("command",), http={**HTTP, "headers": [{"name": "a b", "value": ""}]}),
    "header value and valueFrom": doc(
        drop=("command",), http={**HTTP, "headers": [{**ENV_HEADER, "value": "x"}]}
    ),
    "header with no value": doc(drop=("command",), http={**HTTP, "headers": [{"name": "A"}]}),
    "valueFrom env and file": doc(
        drop=("command",),
        http={**HTTP, "headers": [{"name": "A", "valueFrom": {"env": "T", "file": "/t"}}]},
    ),
    "valueFrom empty": doc(
        drop=("command",), http={**HTTP, "headers": [{"name": "A", "valueFrom": {}}]}
    ),
    "job and command": doc(job=JOB),
    "job without a spec": doc(drop=("command",), job={"metadata": {}}),
    "job namespace": doc(drop=("command",), job={**JOB, "namespace": "Not_A_Label"}),
    "job label too long": doc(
        drop=("command",), job={**JOB, "metadata": {"labels": {"a": "x" * 64}}}
    ),
}

# What the model checks and the CRD cannot (see the docstring of reconciler.core.crd): the API
# server accepts these, crontask reports them as definition errors.
CRD_GAPS = {
    "cron syntax": doc(schedule="61 * * * *"),
    "time zone": doc(timeZone="Mars/Olympus_Mons"),
    "env name": doc(command={"args": ["true"], "env": {"1BAD": "x"}}),
    "reserved env name": doc(command={"args": ["true"], "env": {"CRONTASK_NAME": "x"}}),
    "blank program": doc(command={"args": [" "]}),
    # The JobSpec is kept whole in the CRD (x-kubernetes-preserve-unknown-fields) and checked
    # by crontask against the Kubernetes schema: see the docstring of reconciler.core.crd.
    "job spec field": doc(
        drop=("command",),
        job={"spec": {"template": {"spec": {"containers": [{"name": "m", "imag": "x"}]}}}},
    ),
    "job without an image": doc(
        drop=("command",), job={"spec": {"template": {"spec": {"containers": [{"name": "m"}]}}}}
    ),
    "job restartPolicy": doc(
        drop=("command",),
        job={"spec": {"template": {"spec": {**POD, "restartPolicy": "Always"}}}},
    ),
    "reserved job label": doc(
        drop=("command",), job={**JOB, "metadata": {"labels": {"crontask.dev/task": "x"}}}
    ),
}


def crd_accepts(document: dict[str, Any]) -> bool:
    """Would ``kubectl apply --validate=strict`` of this document succeed, unchanged?"""
    root = schema()
    return (
        openapi_validator(root).is_valid(document)
        and prune(document, root) == document
        and not cel_violations(document, root)
    )


def model_accepts(document: dict[str, Any]) -> bool:
    try:
        CronTask.model_validate(document)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("name", VALID)
def test_both_accept(name: str) -> None:
    assert model_accepts(VALID[name])
    assert crd_accepts(VALID[name])


@pytest.mark.parametrize("name", INVALID)
def test_both_reject(name: str) -> None:
    assert not model_accepts(INVALID[name])
    assert not crd_accepts(INVALID[name])


@pytest.mark.parametrize("name", CRD_GAPS)
def test_known_gaps_only_the_model_rejects(name: str) -> None:
    # If this fails because the CRD now rejects it too: good, move the case to INVALID and
    # update the docstring of reconciler.core.crd.
    assert not model_accepts(CRD_GAPS[name])
    assert crd_accepts(CRD_GAPS[name])


def test_server_defaults_agree_with_the_model() -> None:
    # The API server stores the defaults it fills in; they must be what crontask would assume.
    for document in [*VALID.values(), *(d for _, d in example_documents())]:
        stripped = copy.deepcopy(document)
        defaulted = apply_defaults(stripped, schema())
        assert crd_accepts(defaulted)
        model = CronTask.model_validate(document).to_document()
        assert _subset(defaulted["spec"], model["spec"]), (defaulted["spec"], model["spec"])


def _subset(part: Any, whole: Any) -> bool:
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            k in whole and _subset(v, whole[k]) for k, v in part.items()
        )
    if isinstance(part, list):
        return (
            isinstance(whole, list)
            and len(part) == len(whole)
            and all(_subset(p, w) for p, w in zip(part, whole, strict=True))
        )
    return bool(part == whole)


def test_status_example_validates() -> None:
    status = {
        "observedGeneration": 3,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Scheduled",
                "message": "",
                "lastTransitionTime": "2026-11-27T01:00:00Z",
                "observedGeneration": 3,
            }
        ],
        "active": [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "namespace": "ops",
                "name": "nightly-backup-1795827600",
                "uid": "6f1c2a52-5d4e-4f7e-9b1a-0c3d2e1f4a5b",
            }
        ],
        "activeCount": 1,
        "lastScheduleTime": "2026-11-27T01:00:00Z",
        "lastSuccessfulTime": "2026-11-26T01:00:05Z",
        "lastFailureTime": "2026-11-20T01:00:07Z",
        "nextScheduleTime": "2026-11-28T01:00:00Z",
        "lastRun": {
            "id": "ops.nightly-backup.20261126T010000Z",
            "startTime": "2026-11-26T01:00:00Z",
            "completionTime": "2026-11-26T01:00:05Z",
            "durationMs": 5012,
            "result": "succeeded",
            "exitCode": 0,
            "message": "",
            "job": {"name": "nightly-backup-1795740000", "uid": "0a1b"},
        },
    }
    document = {**task_doc(), "status": status}
    assert crd_accepts(document)
    assert structural_violations(schema()["properties"]["status"] | {"type": "object"}) == []


# -- the conversion refuses what it cannot express --------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
        {"oneOf": [{"type": "string"}]},
        {"type": ["string", "null"]},
        {"type": "string", "propertyNames": {"pattern": "^a"}},
        {"type": "object", "properties": {}, "additionalProperties": True},
        {"$ref": "#/$defs/Missing"},
        {"description": "no type"},
    ],
)
def test_the_conversion_fails_loudly(bad: dict[str, Any]) -> None:
    with pytest.raises(SchemaConversionError):
        _Converter({}, {}).convert(bad, "x")
