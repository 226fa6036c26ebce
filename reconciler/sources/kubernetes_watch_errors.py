"""Why a list or watch of :mod:`reconciler.sources.kubernetes_watch` failed, in one line for the
log and the source's error.

Contract:

- :func:`describe` says an API error as ``HTTP <status>: <reason>: <message>``, the message
  being the API server's own (the ``message`` of its ``Status`` body: a ``403`` names the user,
  verb, resource and namespace RBAC refused), or the start of a body that is no ``Status`` (a
  proxy's page); at most :data:`MESSAGE_CHARS` characters of it, every character that is not
  printable (a newline, an escape sequence) made a space, so a body cannot forge log lines.
- A ``404`` of a custom resource's list (the informer names the resource) asks whether its CRD
  is installed, with the command that installs crontask's.
- Any other error: its type and text, bounded the same way.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes.client.exceptions import ApiException

from reconciler.core.crd import PLURAL
from reconciler.core.model import API_GROUP

MESSAGE_CHARS = 300
# A Status body is a few hundred bytes; one far longer is no Status worth decoding.
_STATUS_BODY = 64 * 1024
# How to install the CRDs crontask knows.
_INSTALL = {f"{PLURAL}.{API_GROUP}": "crontask crd | kubectl apply -f -"}


def describe(err: BaseException, resource: str | None = None) -> str:
    """``err`` in one bounded, printable line; ``resource``: the custom resource listed."""
    if not isinstance(err, ApiException):
        return f"{type(err).__name__}: {printable(str(err))}"
    said = f"HTTP {err.status}: {err.reason}"
    message = _message(err.body)
    if message:
        said += f": {message}"
    if err.status == 404 and resource is not None:
        install = _INSTALL.get(resource)
        said += f" (is the CRD {resource} installed?" + (f" {install})" if install else ")")
    return said


def printable(text: str, limit: int = MESSAGE_CHARS) -> str:
    """``text`` on one line: what is not printable made a space, runs of spaces one, and at
    most ``limit`` characters of it (``...`` says some were left out)."""
    # Bounded first: the text may be of any length.
    cut = text[: limit * 4]
    flat = " ".join("".join(c if c.isprintable() else " " for c in cut).split())
    if len(flat) > limit or len(cut) < len(text):
        return flat[:limit] + "..."
    return flat


def _message(body: Any) -> str:
    """The API server's message in an error's body: its ``Status``'s ``message``, or the start
    of a body that is none."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if not isinstance(body, str) or not body.strip():
        return ""
    if len(body) <= _STATUS_BODY:
        try:
            status = json.loads(body)
        except ValueError:
            status = None
        if isinstance(status, dict):
            message = status.get("message")
            return printable(message) if isinstance(message, str) else ""
    return printable(body)
