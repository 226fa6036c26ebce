"""Names and labels: the DNS and label rules the real server checks, and ``generateName``."""

from __future__ import annotations

import random
import re
from typing import Any

from . import errors
from .errors import FieldError
from .types import ResourceType

SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    r"for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# k8s.io/apiserver/pkg/storage/names: 63 characters at most, 5 of them random.
_MAX_GENERATED_BASE = 58


def generate(base: str) -> str:
    """``generateName``: the base (cut to 58 characters) and five random characters."""
    suffix = "".join(random.choices(_GENERATE_ALPHABET, k=5))  # noqa: S311
    return base[:_MAX_GENERATED_BASE] + suffix


def validate_name(rtype: ResourceType, name: str) -> None:
    """An object name: a DNS-1123 subdomain (a label for namespaces); 422 when not."""
    if not name:
        raise errors.invalid(
            rtype.kind,
            rtype.group,
            name,
            "metadata.name",
            "Required value: name or generateName is required",
        )
    pattern, message, limit = (
        (LABEL, LABEL_MSG, 63) if rtype.key == "namespaces" else (SUBDOMAIN, SUBDOMAIN_MSG, 253)
    )
    if not pattern.match(name) or len(name) > limit:
        raise errors.invalid(
            rtype.kind, rtype.group, name, "metadata.name", f'Invalid value: "{name}": {message}'
        )
    # Then the CRD's own schema for the name, as the real server's validator words it.
    if rtype.name_max_length is not None and len(name) > rtype.name_max_length:
        raise errors.invalid(
            rtype.kind,
            rtype.group,
            name,
            "metadata.name",
            f"Too long: may not be longer than {rtype.name_max_length}",
        )
    if rtype.name_pattern is not None and not re.search(rtype.name_pattern, name):
        raise errors.invalid(
            rtype.kind,
            rtype.group,
            name,
            "metadata.name",
            f"Invalid value: \"{name}\": metadata.name in body should match '{rtype.name_pattern}'",
        )


def label_errors(labels: Any, field: str) -> list[FieldError]:
    """What ``ValidateLabels`` reports: qualified-name keys, values of at most 63 characters."""
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [errors.invalid_value(field, labels, "must be a map of strings")]
    found: list[FieldError] = []
    for key, value in labels.items():
        name = str(key).rpartition("/")[2]
        if not _QUALIFIED_NAME.match(name) or len(name) > 63:
            found.append(
                errors.invalid_value(field, key, "name part must be a valid qualified name")
            )
        if not isinstance(value, str):
            found.append(errors.invalid_value(field, value, "label values must be strings"))
        elif len(value) > 63:
            found.append(errors.invalid_value(field, value, "must be no more than 63 characters"))
        elif not _LABEL_VALUE.match(value):
            found.append(errors.invalid_value(field, value, _LABEL_VALUE_MSG))
    return found
