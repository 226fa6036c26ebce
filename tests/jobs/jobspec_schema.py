"""Builds ``reconciler/core/data/jobspec-batch-v1.json``, the vendored schema of a batch/v1
JobSpec, from the Kubernetes OpenAPI schemas that ``kubernetes-validate`` bundles (a test
dependency: crontask itself ships only the ~50 KB it needs, not the package's 100 MB).

What is kept: the definitions reachable from ``io.k8s.api.batch.v1.JobSpec`` in the *strict*
variant (``additionalProperties: false`` on every object, so a misspelt field is an error), with
the validation keywords only (``type``, ``format``, ``properties``, ``additionalProperties``,
``required``, ``items``, ``oneOf``, ``$ref``); descriptions and ``x-kubernetes-*`` annotations
are dropped and ``$ref`` names the definition directly. ``test_vendored_schema_is_fresh`` fails
when the committed file differs from what this produces; regenerate with

    .venv/bin/python -m tests.jobs.jobspec_schema > reconciler/core/data/jobspec-batch-v1.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate

KUBERNETES = "v1.32.0"
ROOT = "io.k8s.api.batch.v1.JobSpec"
KEPT = frozenset(
    {"type", "format", "properties", "additionalProperties", "required", "items", "oneOf", "$ref"}
)
# Fields the OpenAPI lists as required that the API server fills in when they are left out
# (its defaulting runs before validation): a spec without them is valid. The Kubernetes docs'
# own podFailurePolicy example leaves a pod condition's status out (SetDefaults_Job: True).
DEFAULTED = {"io.k8s.api.batch.v1.PodFailurePolicyOnPodConditionsPattern": frozenset({"status"})}


def _bundled(version: str) -> dict[str, Any]:
    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    document = json.loads((base / f"{version}-local-strict" / "_definitions.json").read_text())
    defs: dict[str, Any] = document["$defs"]
    return defs


def _clean(node: Any, found: set[str]) -> Any:
    if isinstance(node, list):
        return [_clean(item, found) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key not in KEPT:
            continue
        if key == "$ref":
            name = str(value).rpartition("/")[2]
            found.add(name)
            out[key] = name
        elif key == "properties":
            out[key] = {name: _clean(sub, found) for name, sub in value.items()}
        else:
            out[key] = _clean(value, found)
    return out


def generate(version: str = KUBERNETES) -> dict[str, Any]:
    bundled = _bundled(version)
    definitions: dict[str, Any] = {}
    pending = [ROOT]
    while pending:
        name = pending.pop()
        if name in definitions:
            continue
        found: set[str] = set()
        definitions[name] = _clean(bundled[name], found)
        if defaulted := DEFAULTED.get(name):
            node = definitions[name]
            node["required"] = [r for r in node["required"] if r not in defaulted]
            for field in defaulted:  # null as an optional field's: the server defaults it too
                node["properties"][field]["type"] = [node["properties"][field]["type"], "null"]
        pending.extend(sorted(found - definitions.keys()))
    return {"kubernetes": version, "root": ROOT, "definitions": definitions}


def render(schema: dict[str, Any]) -> str:
    """One definition per line: compact, yet a change shows as a readable diff."""
    lines = [
        "{",
        f' "kubernetes": {json.dumps(schema["kubernetes"])},',
        f' "root": {json.dumps(schema["root"])},',
        ' "definitions": {',
    ]
    names = sorted(schema["definitions"])
    for i, name in enumerate(names):
        body = json.dumps(schema["definitions"][name], sort_keys=True, separators=(",", ":"))
        lines.append(f"  {json.dumps(name)}: {body}" + ("," if i < len(names) - 1 else ""))
    lines += [" }", "}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(generate()), end="")
