"""Server-side ``meta.k8s.io/v1 Table`` output, as ``kubectl get`` asks for it.

Columns are the type's printer columns (a CRD's ``additionalPrinterColumns``, or the real
server's logical default of a single ``Age`` column when a version declares none), after the
leading ``Name`` column. As on the real server, ``date`` cells are rendered server-side as a
human-readable age (``5m``), ``integer``/``number``/``boolean`` cells keep their JSON type,
``string`` cells print the value, and a path that finds nothing gives ``null``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from .errors import bad_request
from .timefmt import human_duration as human_duration
from .timefmt import parse_time
from .types import OBJECT_REF, Column, ResourceType

TABLE_ACCEPT = re.compile(r"as=Table", re.IGNORECASE)

NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated."
)

_TOKEN = re.compile(
    r"\.([A-Za-z0-9_\-]+)|\[(\d+|\*)\]|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*==\s*([^)]*)\)\]"
)


def jsonpath_first(obj: Any, path: str) -> Any:
    """First result of a simple JSONPath (``.a.b``, ``[0]``, ``[*]``, ``[?(@.k=="v")]``) or
    ``None`` when nothing matches."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    pos, nodes = 0, [obj]
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if not m:
            raise bad_request(f"unsupported JSONPath {path!r}")
        pos = m.end()
        nxt: list[Any] = []
        for node in nodes:
            if m.group(1) is not None:
                if isinstance(node, dict) and m.group(1) in node:
                    nxt.append(node[m.group(1)])
            elif m.group(2) is not None:
                if isinstance(node, list):
                    if m.group(2) == "*":
                        nxt.extend(node)
                    elif int(m.group(2)) < len(node):
                        nxt.append(node[int(m.group(2))])
            else:
                want = m.group(4).strip().strip("'\"")
                for item in node if isinstance(node, list) else []:
                    if str(jsonpath_first(item, "." + m.group(3))) == want:
                        nxt.append(item)
        nodes = nxt
    return nodes[0] if nodes else None


def _print_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def cell(column: Column, obj: dict[str, Any], now: datetime) -> Any:
    if column.render is not None:
        return column.render(obj, now)
    if column.json_path == OBJECT_REF:
        ref = obj.get("involvedObject") or {}
        return f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"
    value = jsonpath_first(obj, column.json_path)
    if value is None:
        return None
    if column.type == "string":
        return _print_string(value)
    if column.type == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if column.type == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if column.type == "boolean" and isinstance(value, bool):
        return value
    if column.type == "date" and isinstance(value, str):
        try:
            return human_duration((now - parse_time(value)).total_seconds())
        except ValueError:
            return "<invalid>"
    return None


def column_definitions(rtype: ResourceType) -> list[dict[str, Any]]:
    defs = []
    if rtype.name_column:
        defs.append(
            {
                "name": "Name",
                "type": "string",
                "format": "name",
                "description": NAME_DESCRIPTION,
                "priority": 0,
            }
        )
    for c in rtype.columns:
        defs.append(
            {
                "name": c.name,
                "type": c.type,
                "format": c.format,
                "description": c.description
                or f"Custom resource definition column (in JSONPath format): {c.json_path}",
                "priority": c.priority,
            }
        )
    return defs


def _row_object(obj: dict[str, Any], include: str) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def to_table(
    rtype: ResourceType,
    items: list[dict[str, Any]],
    resource_version: str,
    include_object: str = "Metadata",
    no_headers: bool = False,
    continue_token: str = "",
) -> dict[str, Any]:
    now = datetime.now(UTC)
    rows = []
    for obj in items:
        cells = [cell(c, obj, now) for c in rtype.columns]
        if rtype.name_column:
            cells.insert(0, obj["metadata"]["name"])
        row: dict[str, Any] = {"cells": cells}
        row_object = _row_object(obj, include_object)
        if row_object is not None:
            row["object"] = row_object
        rows.append(row)
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    table: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}
    if not no_headers:
        table["columnDefinitions"] = column_definitions(rtype)
    table["rows"] = rows
    return table
