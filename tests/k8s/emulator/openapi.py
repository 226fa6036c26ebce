"""Just enough OpenAPI v3 for kubectl.

kubectl (1.27+) validates with ``--validate=strict`` by default. It first asks ``/openapi/v3``
whether the server supports the ``fieldValidation`` query parameter: it fetches the root
document, then the group-version document, and looks for a PATCH operation tagged with the
object's ``x-kubernetes-group-version-kind`` that lists a ``fieldValidation`` parameter (for a
CRD whose group-version has no document, it checks the Namespace one instead). When supported
it sends ``fieldValidation=Strict`` and validates nothing client-side; otherwise it downloads
``/openapi/v2`` to validate client-side, and fails if that is missing. So the emulator serves
the v3 root and one document per group version with PATCH operations only and no schemas
(which also makes ``kubectl apply`` fall back to its built-in patch-type choice), and 404 for
``/openapi/v2``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .errors import ApiError
from .types import Registry, ResourceType


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _item_path(rtype: ResourceType) -> str:
    base = "/" + _gv_path(rtype.group, rtype.version)
    if rtype.namespaced:
        base += "/namespaces/{namespace}"
    return f"{base}/{rtype.plural}/{{name}}"


def group_version_document(registry: Registry, group: str, version: str) -> dict[str, Any]:
    types = registry.in_group_version(group, version)
    if not types:
        raise ApiError(404, "the server could not find the requested resource")
    paths: dict[str, Any] = {}
    for rtype in types:
        paths[_item_path(rtype)] = {
            "patch": {
                "operationId": f"patch{rtype.kind}",
                "parameters": [
                    {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                    for name in ("dryRun", "fieldManager", "fieldValidation", "force")
                ],
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {
                    "group": rtype.group,
                    "version": rtype.version,
                    "kind": rtype.kind,
                },
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }


def _digest(document: dict[str, Any]) -> str:
    return hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest().upper()


def root_document(registry: Registry) -> dict[str, Any]:
    paths = {}
    for group, versions in sorted(registry.group_versions().items()):
        for version in versions:
            gv = _gv_path(group, version)
            digest = _digest(group_version_document(registry, group, version))
            paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
    return {"paths": paths}


def serve(registry: Registry, parts: list[str]) -> dict[str, Any]:
    """``parts`` is the path after ``/openapi/v3``."""
    if not parts:
        return root_document(registry)
    if parts[0] == "api" and len(parts) == 2:
        return group_version_document(registry, "", parts[1])
    if parts[0] == "apis" and len(parts) == 3:
        return group_version_document(registry, parts[1], parts[2])
    raise ApiError(404, "the server could not find the requested resource")
