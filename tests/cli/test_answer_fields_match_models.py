"""The CLI's tables of the fields a listed run, attempt and task have (``RUN_FIELDS``,
``ATTEMPT_FIELDS``, ``TASK_FIELDS`` in :mod:`reconciler.cli.answers`) are what the API's models
(:mod:`reconciler.api.models`) answer, every field and its JSON types, derived here from the
models' JSON schema. The CLI does not import the models (pydantic and the API's imports cost a
command some 450 ms): without this test nothing tied the tables to them, and a field added,
renamed or made nullable in the API would be refused by the CLI, or not checked."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from reconciler.api.models import RunAttemptOut, RunOut, TaskOut
from reconciler.cli.answers import ATTEMPT_FIELDS, RUN_FIELDS, TASK_FIELDS
from reconciler.core.model import CronTask

# A run's attempt's `job` (a job task's Kubernetes Job) is left out of ATTEMPT_FIELDS on
# purpose: a job of another shape is shown as it can be (`history._job_lines`), not refused.
NOT_CHECKED = {"job"}


def _types(schema: dict[str, Any], defs: dict[str, Any]) -> set[str]:
    """The JSON types (as the tables name them: a list of strings is "strings") a value of
    ``schema`` may have."""
    if "$ref" in schema:
        return _types(defs[schema["$ref"].split("/")[-1]], defs)
    if "anyOf" in schema:
        return set().union(*(_types(s, defs) for s in schema["anyOf"]))
    if "enum" in schema or "const" in schema:  # Literal and enum fields: strings all
        assert all(isinstance(v, str) for v in schema.get("enum", [schema.get("const")]))
        return {"string"}
    if schema.get("type") == "array":
        return {"strings" if schema.get("items", {}).get("type") == "string" else "array"}
    assert "type" in schema, schema  # a field of any type: no table could say it
    return {schema["type"]}


def _fields(
    model: type[BaseModel], nested: bool, mode: JsonSchemaMode = "serialization"
) -> dict[str, set[str]]:
    """``model``'s fields as the API answers them (by alias), each with its types; with
    ``nested``, a field whose value is a model has its fields too, dotted (``lastRun.status``)."""
    schema = model.model_json_schema(by_alias=True, mode=mode)
    defs = schema.get("$defs", {})
    found: dict[str, set[str]] = {}
    for name, field in schema["properties"].items():
        found[name] = _types(field, defs)
        refs = [s["$ref"] for s in [field, *field.get("anyOf", [])] if "$ref" in s]
        for ref in refs if nested else []:
            inner = defs[ref.split("/")[-1]]
            for sub, sub_field in inner.get("properties", {}).items():
                found[f"{name}.{sub}"] = _types(sub_field, defs)
    return found


def _table(fields: dict[str, str]) -> dict[str, set[str]]:
    return {path: set(types.split("|")) for path, types in fields.items()}


def test_a_run_s_fields_are_the_api_s() -> None:
    assert _table(RUN_FIELDS) == _fields(RunOut, nested=False)


def test_an_attempt_s_fields_are_the_api_s_but_its_job() -> None:
    derived = _fields(RunAttemptOut, nested=False)
    assert derived.keys() >= NOT_CHECKED  # what is left out is still there to leave out
    assert _table(ATTEMPT_FIELDS) == {k: v for k, v in derived.items() if k not in NOT_CHECKED}


def test_a_task_s_fields_are_the_api_s() -> None:
    table = _table(TASK_FIELDS)
    resource = {path: types for path, types in table.items() if path.startswith("resource.")}
    rest = {path: types for path, types in table.items() if path not in resource}
    assert rest == _fields(TaskOut, nested=True)
    # The resource is an object of any fields to the API's model: the CronTask document in
    # force, whose schema is the CronTask's. The table has only what the CLI reads of it.
    document = _fields(CronTask, nested=True, mode="validation")
    assert resource == {path: document[path.removeprefix("resource.")] for path in resource}
    assert {"resource.spec.schedule", "resource.spec.timeZone"} <= resource.keys()
