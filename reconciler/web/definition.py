"""A task's definition as its page shows it: YAML, each character that is no text as its
escape, an http URL's secrets only for those who may write tasks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from fastapi import Request

from reconciler.api.auth import Role
from reconciler.api.models import for_readers
from reconciler.api.routes_tasks import WRITER
from reconciler.visible import escaped, has_escaped


class _Dumper(yaml.SafeDumper):
    """YAML as the page shows a definition: a string holding a character that is no text
    (``reconciler.visible``: a U+202E, say, in an argument or a label) double-quoted, the
    style whose escapes (``\\u202e``) YAML reads back as that character."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = '"' if has_escaped(data, keep="\t\n") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def definition_text(resource: Mapping[str, Any]) -> str:
    """``resource`` as YAML, its text kept as it is (accents, any script, emoji), every
    character that is no text shown as its escape: with ``allow_unicode`` PyYAML writes a
    bidirectional override or isolate raw (even double-quoted), and the browser drew the
    definition reordered. Each such character is in a double-quoted scalar (``_Dumper``), where
    its escape is YAML's own: the text shown still reads as the task. (PyYAML escapes every
    character past U+FFFF of a double-quoted scalar, an emoji too.)"""
    dumped = yaml.dump(resource, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    return escaped(dumped, keep="\t\n")


def shown(request: Request, resource: Mapping[str, Any]) -> dict[str, Any]:
    """The definition as this person may read it: an http URL's secrets only for those who
    may write tasks (as the API shows it, ``api.models.for_readers``)."""
    principal = getattr(request.state, "principal", None)
    if principal is not None and principal.role is not None and principal.role.allows(Role(WRITER)):
        return dict(resource)
    return for_readers(resource)


__all__ = ["definition_text", "shown"]
