"""Resource types the emulator serves: a few built-ins plus whatever the registered CRDs declare."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import printers
from .errors import ApiError

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

CRD_GROUP = "apiextensions.k8s.io"


@dataclass(frozen=True)
class Column:
    """A server-side Table column: ``additionalPrinterColumns`` or a built-in printer's."""

    name: str
    type: str
    json_path: str
    description: str = ""
    format: str = ""
    priority: int = 0
    render: Callable[[dict[str, Any], datetime], Any] | None = None  # a built-in printer's cell


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    columns: tuple[Column, ...] = ()
    # Fidelity knobs that differ between the real server's registries.
    unconditional_update: bool = True  # PUT without metadata.resourceVersion allowed
    create_on_update: bool = False  # PUT of a missing object creates it
    return_deleted_object: bool = False  # DELETE answers the object, not a Status
    strategic_merge: bool = True  # built-ins accept strategic merge patch; CRs do not
    builtin: bool = True
    tracks_generation: bool = False  # metadata.generation counts spec changes
    name_column: bool = True  # Table output starts with Name (CRDs); some built-ins differ
    subresources: tuple[str, ...] = ()  # served besides status, GET only (pods/log)
    # A CRD's schema may restrict metadata.name (maxLength, pattern): checked at create.
    name_max_length: int | None = None
    name_pattern: str | None = None

    @property
    def key(self) -> str:
        """Storage key, shared by every version of a resource: ``plural`` or ``plural.group``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def discovery(self) -> list[dict[str, Any]]:
        """This type's entries in an ``APIResourceList``."""
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": ALL_VERBS,
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        entries = [entry]
        if self.status_subresource:
            entries.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        for sub in self.subresources:
            entries.append(
                {
                    "name": f"{self.plural}/{sub}",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": ["get"],
                }
            )
        return entries


OBJECT_REF = "<kind/name of .involvedObject>"  # a computed cell, as the event printer shows

_AGE = Column("Age", "date", ".metadata.creationTimestamp")


def _printed(
    name: str, render: Callable[[dict[str, Any], datetime], Any], priority: int = 0
) -> Column:
    return Column(name, "string", "", render=render, priority=priority)


_PRINTED_AGE = _printed("Age", printers.age)

BUILTINS: tuple[ResourceType, ...] = (
    ResourceType(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        namespaced=False,
        short_names=("ns",),
        status_subresource=True,
        columns=(Column("Status", "string", ".status.phase"), _AGE),
    ),
    ResourceType(
        "",
        "v1",
        "events",
        "event",
        "Event",
        namespaced=True,
        short_names=("ev",),
        create_on_update=True,
        name_column=False,
        columns=(  # the real server's event printer, minus its priority-1 extras but Name
            Column("Last Seen", "date", ".lastTimestamp"),
            Column("Type", "string", ".type"),
            Column("Reason", "string", ".reason"),
            Column("Object", "string", OBJECT_REF),
            Column("Message", "string", ".message"),
            Column("Name", "string", ".metadata.name", format="name", priority=1),
        ),
    ),
    ResourceType(
        "",
        "v1",
        "pods",
        "pod",
        "Pod",
        namespaced=True,
        short_names=("po",),
        categories=("all",),
        status_subresource=True,
        return_deleted_object=True,
        subresources=("log",),
        columns=(
            _printed("Ready", printers.pod_ready),
            _printed("Status", printers.pod_status),
            _printed("Restarts", printers.pod_restarts),
            _PRINTED_AGE,
            _printed("IP", printers.pod_ip, priority=1),
            _printed("Node", printers.pod_node, priority=1),
            _printed("Nominated Node", printers.pod_nominated_node, priority=1),
            _printed("Readiness Gates", printers.pod_readiness_gates, priority=1),
        ),
    ),
    ResourceType(
        "batch",
        "v1",
        "jobs",
        "job",
        "Job",
        namespaced=True,
        categories=("all",),
        status_subresource=True,
        tracks_generation=True,
        columns=(
            _printed("Status", printers.job_status),
            _printed("Completions", printers.job_completions),
            _printed("Duration", printers.job_duration),
            _PRINTED_AGE,
            _printed("Containers", printers.job_containers, priority=1),
            _printed("Images", printers.job_images, priority=1),
            _printed("Selector", printers.job_selector, priority=1),
        ),
    ),
    ResourceType(
        "coordination.k8s.io",
        "v1",
        "leases",
        "lease",
        "Lease",
        namespaced=True,
        columns=(Column("Holder", "string", ".spec.holderIdentity"), _AGE),
    ),
    ResourceType(
        CRD_GROUP,
        "v1",
        "customresourcedefinitions",
        "customresourcedefinition",
        "CustomResourceDefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        categories=("api-extensions",),
        status_subresource=True,
        unconditional_update=False,
        return_deleted_object=True,
        tracks_generation=True,
        columns=(Column("Created At", "date", ".metadata.creationTimestamp"),),
    ),
)

_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key putting the preferred version first: GA, then beta, then alpha; higher first."""
    m = _VERSION_RE.match(version)
    if not m:
        return (3, 0, 0, version)
    stage = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    return (stage, -int(m.group(1)), -int(m.group(3) or 0), version)


def _crd_invalid(name: str, field: str, message: str) -> ApiError:
    return ApiError(
        422,
        f'CustomResourceDefinition.apiextensions.k8s.io "{name}" is invalid: {field}: {message}',
        reason="Invalid",
        details={
            "name": name,
            "group": CRD_GROUP,
            "kind": "CustomResourceDefinition",
            "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}],
        },
    )


def validate_crd(crd: dict[str, Any]) -> None:
    """The structural checks the real server makes that matter for serving the resource."""
    name = crd.get("metadata", {}).get("name", "")
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group, plural, kind = spec.get("group"), names.get("plural"), names.get("kind")
    if not group:
        raise _crd_invalid(name, "spec.group", "Required value")
    if not plural:
        raise _crd_invalid(name, "spec.names.plural", "Required value")
    if not kind:
        raise _crd_invalid(name, "spec.names.kind", "Required value")
    if name != f"{plural}.{group}":
        raise _crd_invalid(
            name,
            "metadata.name",
            f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
        )
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        raise _crd_invalid(
            name, "spec.scope", 'Unsupported value: supported values: "Cluster", "Namespaced"'
        )
    versions = spec.get("versions") or []
    if not versions:
        raise _crd_invalid(name, "spec.versions", "Invalid value: must have exactly one version")
    if sum(1 for v in versions if v.get("storage")) != 1:
        raise _crd_invalid(
            name, "spec.versions", "Invalid value: must have exactly one version marked as storage"
        )


def crd_resource_types(crd: dict[str, Any]) -> list[ResourceType]:
    """One ``ResourceType`` per served version of a (validated) CRD."""
    spec = crd["spec"]
    names = spec["names"]
    types = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        columns = tuple(
            Column(
                name=c["name"],
                type=c.get("type", "string"),
                json_path=c["jsonPath"],
                description=c.get("description", ""),
                format=c.get("format", ""),
                priority=int(c.get("priority", 0)),
            )
            for c in version.get("additionalPrinterColumns") or []
        )
        if not columns:  # the real server's logical default when a version declares none
            columns = (_AGE,)
        schema = (version.get("schema") or {}).get("openAPIV3Schema") or {}
        name = ((schema.get("properties") or {}).get("metadata") or {}).get("properties") or {}
        name = name.get("name") or {}
        types.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                singular=names.get("singular") or names["kind"].lower(),
                kind=names["kind"],
                namespaced=spec["scope"] == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status_subresource="status" in (version.get("subresources") or {}),
                columns=columns,
                unconditional_update=False,
                return_deleted_object=True,
                strategic_merge=False,
                builtin=False,
                tracks_generation=True,
                name_max_length=name.get("maxLength"),
                name_pattern=name.get("pattern"),
            )
        )
    return types


@dataclass
class Registry:
    """Every served (group, version, plural), kept in the store and changed with CRDs."""

    types: dict[tuple[str, str, str], ResourceType] = field(default_factory=dict)

    def add(self, rtype: ResourceType) -> None:
        self.types[(rtype.group, rtype.version, rtype.plural)] = rtype

    def remove_group_resource(self, group: str, plural: str) -> None:
        for k in [k for k in self.types if k[0] == group and k[2] == plural]:
            del self.types[k]

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self.types.get((group, version, plural))

    def by_key(self, key: str) -> ResourceType | None:
        """The preferred version's type for a storage key such as ``crontasks.crontask.dev``."""
        found = [t for t in self.types.values() if t.key == key]
        found.sort(key=lambda t: version_priority(t.version))
        return found[0] if found else None

    def group_versions(self) -> dict[str, list[str]]:
        """Group → served versions, preferred first (core group under "")."""
        groups: dict[str, set[str]] = {}
        for group, version, _ in self.types:
            groups.setdefault(group, set()).add(version)
        return {g: sorted(vs, key=version_priority) for g, vs in groups.items()}

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return sorted(
            (t for t in self.types.values() if t.group == group and t.version == version),
            key=lambda t: t.plural,
        )

    def for_object(self, group: str, kind: str) -> ResourceType | None:
        """The preferred version's type serving ``kind`` in ``group``."""
        found = [t for t in self.types.values() if t.group == group and t.kind == kind]
        found.sort(key=lambda t: version_priority(t.version))
        return found[0] if found else None
