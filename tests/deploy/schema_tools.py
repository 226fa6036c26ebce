"""What the API server does with a CRD schema, re-stated offline for the tests.

There is no API server in the test suite, so the server-side behaviours the CRD relies on are
written out here, each as small as the CRD needs it: the structural-schema rules
(:func:`structural_violations`), pruning of unknown fields (:func:`prune`), defaulting
(:func:`apply_defaults`) and the one CEL form crontask generates (:func:`cel_violations`).
"""

from __future__ import annotations

import copy
import re
from typing import Any

import jsonschema

# Keywords the structural rules forbid inside anyOf/allOf/oneOf/not: those may only carry
# value validations, the shape (type, fields, defaults) must be stated outside of them.
_SHAPE_KEYS = frozenset(
    {"type", "description", "default", "nullable", "additionalProperties", "title", "items"}
)
_FORBIDDEN_ANYWHERE = frozenset({"$ref", "$defs", "definitions", "$schema", "$id", "id", "const"})
_COMBINATORS = ("anyOf", "allOf", "oneOf", "not")


def structural_violations(root: dict[str, Any]) -> list[str]:
    """Every way ``root`` (an openAPIV3Schema) breaks the structural rules crontask relies on."""
    problems: list[str] = []
    if root.get("type") != "object":
        problems.append("<root>: type must be object")
    metadata = root.get("properties", {}).get("metadata")
    if metadata is not None and not _metadata_allowed(metadata):
        problems.append(
            "<root>.metadata: only {type: object} and restrictions of name and generateName"
        )
    _check(root, "<root>", problems, in_metadata=False)
    return problems


def _metadata_allowed(metadata: Any) -> bool:
    """What the API server takes at the root's ``metadata``: ``{type: object}``, plus string
    restrictions (maxLength, pattern, ...) of ``name`` and ``generateName`` alone."""
    if not isinstance(metadata, dict) or metadata.get("type") != "object":
        return False
    if set(metadata) - {"type", "properties"}:
        return False
    fields = metadata.get("properties", {})
    return set(fields) <= {"name", "generateName"} and all(
        isinstance(f, dict)
        and f.get("type") == "string"
        and set(f) <= {"type", "maxLength", "minLength", "pattern"}
        for f in fields.values()
    )


def _check(node: Any, where: str, problems: list[str], *, in_metadata: bool) -> None:
    if not isinstance(node, dict):
        problems.append(f"{where}: a schema must be an object, not {node!r}")
        return
    for key in sorted(_FORBIDDEN_ANYWHERE & node.keys()):
        problems.append(f"{where}: {key} is not allowed")
    open_node = (
        node.get("x-kubernetes-preserve-unknown-fields") is True
        or node.get("x-kubernetes-int-or-string") is True
    )
    kind = node.get("type")
    if not open_node and not (isinstance(kind, str) and kind):
        problems.append(f"{where}: every node needs a single type")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{where}: properties and additionalProperties are mutually exclusive")
    if "additionalProperties" in node and not isinstance(node["additionalProperties"], dict):
        problems.append(f"{where}: additionalProperties must be a schema, not a boolean")
    if kind == "array" and not isinstance(node.get("items"), dict):
        problems.append(f"{where}: an array needs one items schema")
    if node.get("uniqueItems") is True:
        problems.append(f"{where}: uniqueItems: true is not allowed (quadratic)")
    for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if flag in node and (not isinstance(node[flag], bool) or bound not in node):
            problems.append(f"{where}: {flag} must be a boolean beside {bound} (OpenAPI v3.0)")
    if "default" in node:
        if in_metadata:
            problems.append(f"{where}: no defaults under metadata")
        bare = {k: v for k, v in node.items() if k != "default"}
        if not jsonschema.Draft4Validator(bare).is_valid(node["default"]):
            problems.append(f"{where}: default {node['default']!r} does not validate")
    for combinator in _COMBINATORS:
        branches = node.get(combinator)
        if branches is None:
            continue
        for i, branch in enumerate(branches if isinstance(branches, list) else [branches]):
            shape = sorted(k for k in branch if k in _SHAPE_KEYS or k.startswith("x-kubernetes"))
            if shape:
                problems.append(f"{where}.{combinator}[{i}]: may not set {', '.join(shape)}")
    for rule in node.get("x-kubernetes-validations", []):
        if open_node:
            problems.append(f"{where}: CEL rules on a preserve-unknown-fields node")
        if not isinstance(rule.get("rule"), str) or "\n" in str(rule.get("message", "")):
            problems.append(f"{where}: a rule needs a rule string and a one-line message")
    if node.get("x-kubernetes-list-type") == "map":
        item = node.get("items", {})
        for key in node.get("x-kubernetes-list-map-keys", []):
            if key not in item.get("required", []):
                problems.append(f"{where}: list-map key {key} must be required")
    for name, sub in node.get("properties", {}).items():
        meta = in_metadata or (where == "<root>" and name == "metadata")
        _check(sub, f"{where}.{name}", problems, in_metadata=meta)
    if isinstance(node.get("items"), dict):
        _check(node["items"], f"{where}[]", problems, in_metadata=in_metadata)
    if isinstance(node.get("additionalProperties"), dict):
        _check(node["additionalProperties"], f"{where}.*", problems, in_metadata=in_metadata)


def openapi_validator(schema: dict[str, Any]) -> jsonschema.Draft4Validator:
    """A validator with OpenAPI v3.0 semantics: draft 4 has the boolean exclusiveMinimum, and
    ignores the ``x-kubernetes-*`` keywords as annotations, as they are for JSON Schema."""
    return jsonschema.Draft4Validator(schema)


def prune(value: Any, schema: dict[str, Any], *, root: bool = True) -> Any:
    """``value`` with every field the schema does not declare removed, as the API server does.

    The root's ``metadata`` is ObjectMeta, which the server keeps (name, namespace, labels...).
    """
    if isinstance(value, dict) and schema.get("type") == "object":
        if schema.get("x-kubernetes-preserve-unknown-fields") is True:
            return copy.deepcopy(value)
        if "additionalProperties" in schema:
            return {
                k: prune(v, schema["additionalProperties"], root=False) for k, v in value.items()
            }
        properties: dict[str, Any] = schema.get("properties", {})
        out: dict[str, Any] = {}
        for key, sub in value.items():
            if root and key == "metadata":
                out[key] = copy.deepcopy(sub)
            elif key in properties:
                out[key] = prune(sub, properties[key], root=False)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(v, schema["items"], root=False) for v in value]
    return copy.deepcopy(value)


def apply_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """``value`` with the schema's defaults filled in where a field is absent."""
    if isinstance(value, dict) and schema.get("type") == "object":
        out = copy.deepcopy(value)
        for key, sub in schema.get("properties", {}).items():
            if key not in out and "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
            if key in out:
                out[key] = apply_defaults(out[key], sub)
        if isinstance(schema.get("additionalProperties"), dict):
            for key in out:
                out[key] = apply_defaults(out[key], schema["additionalProperties"])
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(v, schema["items"]) for v in value]
    return value


# The only CEL form crontask generates: "exactly one of these fields is set".
_EXACTLY_ONE = re.compile(r"^\[(has\(self\.\w+\)(?:, has\(self\.\w+\))*)\]\.exists_one\(x, x\)$")


def exactly_one_fields(rule: str) -> list[str]:
    """The fields of an "exactly one" rule; AssertionError for any other CEL expression, so a
    new kind of rule cannot go untested (teach this evaluator the new form)."""
    match = _EXACTLY_ONE.match(rule)
    assert match, f"no offline evaluator for the CEL rule {rule!r}"
    return re.findall(r"has\(self\.(\w+)\)", match.group(1))


def cel_violations(value: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """The messages of every ``x-kubernetes-validations`` rule ``value`` breaks."""
    found: list[str] = []
    if isinstance(value, dict):
        for rule in schema.get("x-kubernetes-validations", []):
            fields = exactly_one_fields(rule["rule"])
            if sum(name in value for name in fields) != 1:
                found.append(f"{where or '<root>'}: {rule['message']}")
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                found += cel_violations(value[key], sub, f"{where}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            found += cel_violations(item, schema["items"], f"{where}[{i}]")
    return found


def walk(schema: dict[str, Any], where: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every schema node with its path, parents first."""
    nodes = [(where or "<root>", schema)]
    for name, sub in schema.get("properties", {}).items():
        nodes += walk(sub, f"{where}.{name}")
    if isinstance(schema.get("items"), dict):
        nodes += walk(schema["items"], f"{where}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        nodes += walk(schema["additionalProperties"], f"{where}.*")
    return nodes
