"""API errors as the real API server reports them: an HTTP code and a ``meta/v1 Status`` body."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

REASONS: dict[int, str] = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A ``Status`` of kind Failure, the body every API error carries."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return body


class ApiError(Exception):
    """Raised anywhere in the emulator; the HTTP layer turns it into a response."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details

    def status(self) -> dict[str, Any]:
        return status_body(self.code, self.reason, self.message, self.details)


def _details(name: str, group: str, kind: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": kind}
    if group:
        details["group"] = group
    return details


def not_found(resource: str, group: str, name: str) -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(404, f'{qualified} "{name}" not found', details=_details(name, group, resource))


def already_exists(resource: str, group: str, name: str) -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(
        409,
        f'{qualified} "{name}" already exists',
        reason="AlreadyExists",
        details=_details(name, group, resource),
    )


def conflict(resource: str, group: str, name: str, why: str | None = None) -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    why = why or (
        "the object has been modified; please apply your changes to the latest version "
        "and try again"
    )
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {qualified} "{name}": {why}',
        reason="Conflict",
        details=_details(name, group, resource),
    )


_CAUSE_REASONS = {
    "Required value": "FieldValueRequired",
    "Invalid value": "FieldValueInvalid",
    "Unsupported value": "FieldValueNotSupported",
    "Duplicate value": "FieldValueDuplicate",
    "Forbidden": "FieldValueForbidden",
    "Too long": "FieldValueTooLong",
    "Not found": "FieldValueNotFound",
}


@dataclass(frozen=True)
class FieldError:
    """One ``field.Error`` of the real server: a field path, a cause reason, and the error body
    (``Required value``, ``Invalid value: "x": detail``, ...)."""

    field: str
    body: str

    @property
    def reason(self) -> str:
        return _CAUSE_REASONS.get(self.body.split(":")[0], "FieldValueInvalid")

    def __str__(self) -> str:
        return f"{self.field}: {self.body}"


def _go_value(value: Any) -> str:
    """A bad value as Go's ``%#v``-ish rendering in field errors: strings quoted, numbers bare."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def required(field: str, detail: str = "") -> FieldError:
    return FieldError(field, "Required value" + (f": {detail}" if detail else ""))


def invalid_value(field: str, value: Any, detail: str) -> FieldError:
    return FieldError(field, f"Invalid value: {_go_value(value)}: {detail}")


def not_supported(field: str, value: Any, supported: list[str]) -> FieldError:
    values = ", ".join(json.dumps(v) for v in supported)
    return FieldError(field, f"Unsupported value: {_go_value(value)}: supported values: {values}")


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError(field, f"Duplicate value: {_go_value(value)}")


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError(field, f"Forbidden: {detail}")


def field_not_found(field: str, value: Any) -> FieldError:
    """``field.NotFound``: a reference to something the object does not declare."""
    return FieldError(field, f"Not found: {_go_value(value)}")


def too_long(field: str, max_bytes: int) -> FieldError:
    """``field.TooLong`` as Kubernetes 1.31+ words it (the value is never shown)."""
    return FieldError(field, f"Too long: may not be more than {max_bytes} bytes")


def invalid_fields(kind: str, group: str, name: str, errs: list[FieldError]) -> ApiError:
    """422 Invalid with one cause per field error, worded as the real server words them."""
    qualified = f"{kind}.{group}" if group else kind
    listed = str(errs[0]) if len(errs) == 1 else "[" + ", ".join(str(e) for e in errs) + "]"
    return ApiError(
        422,
        f'{qualified} "{name}" is invalid: {listed}',
        reason="Invalid",
        details={
            **_details(name, group, kind),
            "causes": [{"reason": e.reason, "message": e.body, "field": e.field} for e in errs],
        },
    )


def invalid(kind: str, group: str, name: str, field: str, message: str) -> ApiError:
    return invalid_fields(kind, group, name, [FieldError(field, message)])


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, reason="BadRequest")
