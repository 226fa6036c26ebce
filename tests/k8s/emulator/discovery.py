"""Discovery documents (legacy, unaggregated form) and ``/version``.

kubectl first asks for aggregated discovery (``Accept: application/json;g=apidiscovery.k8s.io;
v=v2;as=APIGroupDiscoveryList,...,application/json``); answering plain ``application/json``
with the legacy documents makes it fall back to ``/api``, ``/apis`` and one request per group
version, as it does against servers older than 1.26.
"""

from __future__ import annotations

from typing import Any

from .errors import ApiError
from .types import Registry

# The order of the real server's /apis (for the groups served here).
BUILTIN_GROUP_ORDER = ("batch", "apiextensions.k8s.io", "coordination.k8s.io")

VERSION_INFO = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-12-11T00:00:00Z",
    "goVersion": "go1.23.3",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(registry: Registry) -> dict[str, Any]:
    groups = registry.group_versions()
    names = [g for g in BUILTIN_GROUP_ORDER if g in groups]
    names += sorted(g for g in groups if g and g not in BUILTIN_GROUP_ORDER)
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group(g, groups[g]) for g in names],
    }


def _not_found() -> ApiError:
    return ApiError(404, "the server could not find the requested resource")


def api_group(registry: Registry, group: str) -> dict[str, Any]:
    versions = registry.group_versions().get(group)
    if not group or not versions:
        raise _not_found()
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(group, versions)}


def api_resource_list(registry: Registry, group: str, version: str) -> dict[str, Any]:
    types = registry.in_group_version(group, version)
    if not types:
        raise _not_found()
    body: dict[str, Any] = {"kind": "APIResourceList"}
    if group:
        body["apiVersion"] = "v1"
    body["groupVersion"] = f"{group}/{version}" if group else version
    body["resources"] = [entry for t in types for entry in t.discovery()]
    return body
