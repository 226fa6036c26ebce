"""The CronTask CustomResourceDefinition, generated from the pydantic model.

The model (:mod:`reconciler.core.model`) is the single source of truth: ``crontask crd`` prints
:func:`crd_document` and ``deploy/crd.yaml`` is its committed copy (a test fails when it is
stale). The CRD's ``openAPIV3Schema`` is the model's JSON Schema converted to a *structural*
schema, which is what the API server requires for pruning, defaulting and CEL rules:

- Every ``$ref`` is inlined and ``$defs`` disappears; the keywords beside a ``$ref`` (a field's
  ``description`` or ``default``) win over the referenced definition's.
- ``anyOf: [X, {type: null}]`` (an optional field) becomes ``X``: the field is simply not in
  ``required``. ``nullable`` is not emitted: the API server prunes an explicit ``null`` on a
  non-nullable field before validation, which is what the model does with ``None``.
- ``title``, ``$schema``, ``$id`` and ``default: null`` are dropped; ``description``, non-null
  ``default``, ``enum``, ``pattern``, lengths, ``minItems``, ``minimum``/``maximum`` and
  ``required`` are kept. ``const: X`` becomes ``enum: [X]``.
- OpenAPI v3.0 (what CRDs speak) has a boolean ``exclusiveMinimum`` that modifies ``minimum``,
  where JSON Schema 2020-12 has a number: ``exclusiveMinimum: 0`` becomes
  ``minimum: 0, exclusiveMinimum: true`` (likewise for the maximum).
- ``additionalProperties: false`` is dropped. A structural schema may not have
  ``additionalProperties`` beside ``properties``; the object stays closed anyway, because the
  API server prunes unknown fields (and ``kubectl apply --validate=strict``, kubectl's default,
  rejects them before they are sent). Maps (``additionalProperties: {type: string}`` with no
  ``properties``) are kept as they are.
- At the root, ``metadata`` is ``{type: object}`` only (the API server owns and validates
  ObjectMeta; a structural schema may not constrain more than name and generateName there),
  ``apiVersion`` and ``kind`` are plain strings (the server sets them from the URL), only
  ``spec`` is required, and a ``status`` schema describes what crontask reports.
- Rules that span fields, which JSON Schema cannot state without ``oneOf`` (not allowed to carry
  types in a structural schema), become ``x-kubernetes-validations`` CEL rules: exactly one
  action on a spec (built from :data:`~reconciler.core.model.ACTION_FIELDS`), exactly one of
  ``value``/``valueFrom`` on a header, exactly one of ``env``/``file`` in ``valueFrom``.
- Any other keyword, a nullable union of several types, or a combinator is an error: a model
  change the conversion does not understand fails loudly here (and in the tests) instead of
  producing a CRD the API server would reject or that accepts less than the model.

Some checks stay in crontask and are not in the CRD (the API server accepts the object,
crontask reports it as a definition error): cron syntax of ``schedule``, that ``timeZone`` is a
known zone, environment variable names (a CEL rule over an unbounded map of unbounded keys
would exceed the API server's cost budget), a non-blank program in ``command.args``, and the
JobSpec of ``spec.job.spec`` (see above).

Output is deterministic: properties keep the model's field order and every schema node lists
its keywords in one fixed order (:data:`_KEY_ORDER`), so the committed copy compares cleanly.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from reconciler.core.actions import HttpHeader, ValueSource
from reconciler.core.model import (
    ACTION_FIELDS,
    API_GROUP,
    KIND,
    TaskSpec,
    json_schema,
)
from reconciler.core.runs import DNS1123_LABEL

VERSION: Final = "v1alpha1"
PLURAL: Final = "crontasks"
SINGULAR: Final = "crontask"
SHORT_NAMES: Final = ("ct",)
CRD_NAME: Final = f"{PLURAL}.{API_GROUP}"

# Keywords the conversion copies as they are (after converting their sub-schemas).
_PLAIN: Final = frozenset(
    {
        "type",
        "format",
        "description",
        "default",
        "enum",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "required",
    }
)
# Keywords dropped: names for humans and documents, not for validation.
_DROPPED: Final = frozenset({"title", "$schema", "$id", "$defs"})

# One fixed keyword order for every node; anything else (none today) sorts after, by name.
_KEY_ORDER: Final = (
    "type",
    "format",
    "description",
    "default",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "items",
    "properties",
    "additionalProperties",
    "required",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-validations",
)


class SchemaConversionError(ValueError):
    """The model's JSON Schema uses something a structural CRD schema cannot express."""


def exactly_one_rule(fields: tuple[str, ...] | list[str]) -> str:
    """The CEL expression "exactly one of ``fields`` is set" on the object at hand."""
    present = ", ".join(f"has(self.{name})" for name in fields)
    return f"[{present}].exists_one(x, x)"


def _exactly_one(fields: tuple[str, ...], what: str) -> dict[str, str]:
    names = ", ".join(fields)
    return {"rule": exactly_one_rule(fields), "message": f"{what} needs exactly one of {names}"}


# CEL rules for what the model checks in its ``model_validator``s, by the pydantic class whose
# $defs entry they attach to. Keyed by class name so that renaming a class fails loudly (see
# the check of unused rules in ``_Converter``) rather than silently dropping a rule.
def _rules() -> dict[str, list[dict[str, str]]]:
    return {
        TaskSpec.__name__: [
            {
                "rule": exactly_one_rule(ACTION_FIELDS),
                "message": "exactly one action is required: one of " + ", ".join(ACTION_FIELDS),
            }
        ],
        HttpHeader.__name__: [_exactly_one(("value", "valueFrom"), "a header")],
        ValueSource.__name__: [_exactly_one(("env", "file"), "valueFrom")],
    }


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    rank = {key: i for i, key in enumerate(_KEY_ORDER)}
    keys = sorted(node, key=lambda k: (rank.get(k, len(rank)), k))
    return {key: node[key] for key in keys}


class _Converter:
    def __init__(self, defs: dict[str, Any], rules: dict[str, list[dict[str, str]]]) -> None:
        self.defs = defs
        self.rules = rules
        self.used_rules: set[str] = set()

    def convert(self, schema: dict[str, Any], where: str) -> dict[str, Any]:
        schema = self._flatten(schema, where)
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key in _DROPPED:
                continue
            if key == "default" and value is None:
                continue  # an optional field's "unset" is absence, not a value
            if key in _PLAIN:
                out[key] = copy.deepcopy(value)
            elif key == "const":
                out["enum"] = [value]
            elif key in ("exclusiveMinimum", "exclusiveMaximum"):
                bound = "minimum" if key == "exclusiveMinimum" else "maximum"
                if bound in schema:
                    raise SchemaConversionError(f"{where}: both {bound} and {key}")
                out[bound] = value
                out[key] = True
            elif key == "items":
                out["items"] = self.convert(value, f"{where}[]")
            elif key == "properties":
                out["properties"] = {
                    name: self.convert(sub, f"{where}.{name}") for name, sub in value.items()
                }
            elif key == "additionalProperties":
                if value is False:
                    continue  # closed by pruning instead; see the module docstring
                if value is True and "properties" not in schema:
                    # An embedded object of another API (a JobSpec): kept whole; crontask
                    # checks it against that API's own schema (see the module docstring).
                    out["x-kubernetes-preserve-unknown-fields"] = True
                    continue
                if value is True or "properties" in schema:
                    raise SchemaConversionError(
                        f"{where}: additionalProperties {value!r} cannot be structural here"
                    )
                out["additionalProperties"] = self.convert(value, f"{where}.*")
            elif key == "x-kubernetes-validations":
                out[key] = value  # attached by _flatten from the rules table
            else:
                raise SchemaConversionError(f"{where}: {key!r} has no structural conversion")
        if isinstance(out.get("type"), list):
            raise SchemaConversionError(
                f"{where}: a union of types {out['type']} is not structural"
            )
        if "type" not in out:
            raise SchemaConversionError(f"{where}: no type")
        return _ordered(out)

    def _flatten(self, schema: dict[str, Any], where: str) -> dict[str, Any]:
        """Resolve ``$ref`` and optional-field unions into one plain schema node."""
        if "$ref" in schema:
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            ref: str = schema["$ref"]
            prefix = "#/$defs/"
            if not ref.startswith(prefix) or ref[len(prefix) :] not in self.defs:
                raise SchemaConversionError(f"{where}: unresolvable $ref {ref!r}")
            name = ref[len(prefix) :]
            target = dict(self._flatten(self.defs[name], where))
            if name in self.rules:
                self.used_rules.add(name)
                target["x-kubernetes-validations"] = copy.deepcopy(self.rules[name])
            return {**target, **siblings}
        for combinator in ("allOf", "oneOf", "not"):
            if combinator in schema:
                raise SchemaConversionError(f"{where}: {combinator} is not supported")
        if "anyOf" in schema:
            branches: list[dict[str, Any]] = schema["anyOf"]
            real = [b for b in branches if b != {"type": "null"}]
            if len(real) != 1 or len(branches) != 2:
                raise SchemaConversionError(
                    f"{where}: anyOf other than [X, null] cannot be expressed structurally"
                )
            siblings = {k: v for k, v in schema.items() if k != "anyOf"}
            return {**self._flatten(real[0], where), **siblings}
        return schema


def _string(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


def _timestamp(description: str) -> dict[str, Any]:
    return _string(description, format="date-time")


def _condition_schema() -> dict[str, Any]:
    # metav1.Condition, as Kubernetes' own types declare it, so generic tooling (kubectl wait
    # --for=condition=Ready, kstatus) reads crontask's conditions like any other.
    return {
        "type": "object",
        "description": "One aspect of the task's state (metav1.Condition).",
        "properties": {
            "type": _string(
                "CamelCase condition type, e.g. Ready.",
                pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
                maxLength=316,
            ),
            "status": _string("True, False or Unknown.", enum=["True", "False", "Unknown"]),
            "observedGeneration": {
                "type": "integer",
                "format": "int64",
                "description": "The .metadata.generation the condition was set for.",
                "minimum": 0,
            },
            "lastTransitionTime": _timestamp("When the status last changed."),
            "reason": _string(
                "CamelCase reason for the last transition.",
                pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
                minLength=1,
                maxLength=1024,
            ),
            "message": _string("Human-readable details; may be empty.", maxLength=32768),
        },
        "required": ["type", "status", "lastTransitionTime", "reason", "message"],
    }


def _object_reference() -> dict[str, Any]:
    # The fields of core/v1 ObjectReference that a reference to a Job uses.
    return {
        "type": "object",
        "description": "A reference to an object (core/v1 ObjectReference).",
        "properties": {
            "apiVersion": _string("API version of the referent."),
            "kind": _string("Kind of the referent."),
            "namespace": _string("Namespace of the referent."),
            "name": _string("Name of the referent (for a run without an object: its run id)."),
            "uid": _string("UID of the referent."),
        },
    }


def _status_schema() -> dict[str, Any]:
    # The precise shape rather than x-kubernetes-preserve-unknown-fields: the API server prunes
    # anything else, so a typo in the status writer shows up in tests, not in production.
    last_run = {
        "type": "object",
        "description": "The most recent run that finished (or is going).",
        "properties": {
            "id": _string("The run's id: task and slot, e.g. ops.nightly-backup.20261127T010000Z."),
            "startTime": _timestamp("When the run started."),
            "completionTime": _timestamp("When the run finished; unset while it runs."),
            "durationMs": {
                "type": "integer",
                "format": "int64",
                "description": "Wall-clock duration in milliseconds.",
                "minimum": 0,
            },
            "result": _string("running, succeeded, failed, timedOut, skipped or interrupted."),
            "exitCode": {
                "type": "integer",
                "format": "int32",
                "description": "The command's exit code, or the HTTP response status.",
            },
            "message": _string("Why it failed or was skipped, in words."),
            "job": {
                "type": "object",
                "description": "The Job of a job task's run.",
                "properties": {
                    "name": _string("The Job's name."),
                    "uid": _string("The Job's uid."),
                },
            },
        },
    }
    return {
        "type": "object",
        "description": "What crontask observed; written by crontask through the status "
        "subresource.",
        "properties": {
            "observedGeneration": {
                "type": "integer",
                "format": "int64",
                "description": "The .metadata.generation crontask last acted on.",
                "minimum": 0,
            },
            "conditions": {
                "type": "array",
                "description": "Ready (the definition is valid and scheduled) and others.",
                "items": _condition_schema(),
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
            "active": {
                "type": "array",
                "description": "The runs going now, as object references (as a CronJob's): a "
                "Job run names its Job (apiVersion, kind, namespace, name, uid); a run with no "
                "Kubernetes object (command, http) gives its run id as the name.",
                "items": _object_reference(),
                "x-kubernetes-list-type": "atomic",
            },
            "activeCount": {
                "type": "integer",
                "description": "How many runs are going now (len(active)), for the Active "
                "column: JSONPath cannot count.",
                "minimum": 0,
            },
            "lastScheduleTime": _timestamp(
                "The latest scheduled slot that ran (a manual run leaves it, as on a CronJob)."
            ),
            "lastSuccessfulTime": _timestamp("When a run last succeeded."),
            "lastFailureTime": _timestamp("When a run last failed."),
            "nextScheduleTime": _timestamp("The next slot, or unset while suspended."),
            "lastRun": last_run,
            "lastRunNow": {
                "type": "string",
                "description": "The crontask.dev/run-now annotation value last acted on: each "
                "new value starts one manual run, once, also across restarts.",
            },
        },
    }


def _order_tree(node: Any) -> Any:
    """Apply :func:`_ordered` to every schema node of a hand-written schema."""
    if not isinstance(node, dict):
        return node
    out = dict(node)
    if isinstance(out.get("items"), dict):
        out["items"] = _order_tree(out["items"])
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _order_tree(v) for k, v in out["properties"].items()}
    return _ordered(out)


def open_api_v3_schema() -> dict[str, Any]:
    """The structural ``openAPIV3Schema`` of a CronTask (see the module docstring)."""
    source = json_schema()
    rules = _rules()
    converter = _Converter(source.get("$defs", {}), rules)
    properties: dict[str, Any] = source["properties"]
    unused = set(rules) - set(source.get("$defs", {}))
    if unused:
        raise SchemaConversionError(f"CEL rules for classes not in the schema: {sorted(unused)}")
    spec = converter.convert(properties["spec"], "spec")
    unused = set(rules) - converter.used_rules
    if unused:
        raise SchemaConversionError(f"CEL rules never attached: {sorted(unused)}")
    return {
        "type": "object",
        "description": source["description"],
        "properties": {
            "apiVersion": _string(
                "APIVersion defines the versioned schema of this representation of an object."
            ),
            "kind": _string("Kind is a string value representing the REST resource."),
            # A task's name is a DNS-1123 label (its Jobs and Events are named after it): the
            # API server refuses another at apply time, where crontask could only report it.
            "metadata": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 63, "pattern": DNS1123_LABEL}
                },
            },
            "spec": spec,
            "status": _order_tree(_status_schema()),
        },
        "required": ["spec"],
    }


def _printer_columns() -> list[dict[str, Any]]:
    def column(
        name: str, type_: str, path: str, description: str, priority: int = 0
    ) -> dict[str, Any]:
        out = {"name": name, "type": type_, "jsonPath": path, "description": description}
        return {**out, "priority": priority} if priority else out

    ready = '.status.conditions[?(@.type=="Ready")]'
    return [
        column("Schedule", "string", ".spec.schedule", "Cron expression or @every interval."),
        column("Suspend", "boolean", ".spec.suspend", "No new runs while true."),
        # A spec crontask refuses (InvalidSpec), one past --max-tasks (TaskLimit), or another
        # definition of the same key wins (Conflict): False here, and why with `-o wide`.
        column(
            "Ready",
            "string",
            f"{ready}.status",
            "Whether the task runs as its spec says (the Ready condition).",
        ),
        column("Reason", "string", f"{ready}.reason", "Why, in one word (-o wide).", priority=1),
        column("Active", "integer", ".status.activeCount", "Runs going now."),
        column(
            "Last Schedule", "date", ".status.lastScheduleTime", "Latest scheduled slot that ran."
        ),
        column("Last Result", "string", ".status.lastRun.result", "Result of the latest run."),
        # A `date` column renders as an age, and a time in the future as `<invalid>`, so the
        # next run is shown as the RFC 3339 timestamp it is.
        column("Next Run", "string", ".status.nextScheduleTime", "The next slot (RFC 3339)."),
        column("Age", "date", ".metadata.creationTimestamp", "Since the task was created."),
    ]


def crd_document() -> dict[str, Any]:
    """The CustomResourceDefinition ``crontasks.crontask.dev`` (apiextensions.k8s.io/v1).

    Print it with ``yaml.safe_dump(crd_document(), sort_keys=False)``; a fresh dict each call.
    """
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/name": "crontask"},
        },
        "spec": {
            "group": API_GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": _printer_columns(),
                    "schema": {"openAPIV3Schema": open_api_v3_schema()},
                }
            ],
        },
    }
