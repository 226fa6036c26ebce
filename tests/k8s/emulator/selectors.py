"""Label selectors (equality- and set-based) and field selectors, for list and watch."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import bad_request

Predicate = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split(selector: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _requirement(term: str, lookup: Callable[[dict[str, Any], str], str | None]) -> Predicate:
    m = _SET_RE.match(term)
    if m:
        key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
        if op == "in":
            return lambda o: lookup(o, key) in values
        return lambda o: lookup(o, key) not in values
    for op in ("!=", "==", "="):
        if op in term:
            key, value = (s.strip() for s in term.split(op, 1))
            if not key:
                raise bad_request(f"unable to parse requirement: {term!r}")
            if op == "!=":
                return lambda o: lookup(o, key) != value
            return lambda o: lookup(o, key) == value
    if term.startswith("!"):
        key = term[1:].strip()
        return lambda o: lookup(o, key) is None
    return lambda o: lookup(o, term) is not None


def _label(obj: dict[str, Any], key: str) -> str | None:
    labels = obj.get("metadata", {}).get("labels") or {}
    value = labels.get(key)
    return None if value is None else str(value)


def _field(obj: dict[str, Any], path: str) -> str | None:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return ""  # the real server compares missing fields as empty strings
        node = node[part]
    if isinstance(node, bool):
        return "true" if node else "false"
    return "" if node is None else str(node)


def _compile(
    selector: str | None, lookup: Callable[[dict[str, Any], str], str | None]
) -> Predicate:
    if not selector:
        return lambda o: True
    predicates = [_requirement(t, lookup) for t in _split(selector)]
    return lambda o: all(p(o) for p in predicates)


def matcher(label_selector: str | None, field_selector: str | None) -> Predicate:
    labels = _compile(label_selector, _label)
    fields = _compile(field_selector, _field)
    return lambda o: labels(o) and fields(o)


def label_selector_matches(selector: dict[str, Any] | None, labels: dict[str, Any]) -> bool:
    """Whether a ``metav1.LabelSelector`` (``matchLabels``, ``matchExpressions``) selects
    ``labels``. An empty selector selects everything, as on the real server."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if op == "In" and (not present or labels[key] not in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True
