"""What the status writer says when the API server will not take a write, beside what every
refused write says (:mod:`reconciler.sinks.refusals`, which imports no Kubernetes client).

Contract:

- :func:`names_object` tells the two ``404`` of a write apart: the object is gone (the API
  server's ``Status`` names it in ``details.name``), or the server serves no such path (a CRD
  missing or without the ``/status`` subresource, or whose handler is not ready yet, as just
  after an API server restarts: ``the server could not find the requested resource``, no
  details).
"""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException

# What a missing CRD, or one without the /status subresource, needs: crontask's own, applied.
CRD_FIX = "crontask crd | kubectl apply -f -"
# A Status body is a few hundred bytes; anything much longer is not one worth decoding.
_STATUS_BODY = 64 * 1024


def names_object(err: ApiException, name: str) -> bool:
    """Whether a ``404`` says the object ``name`` is not there (its ``Status`` names it), rather
    than that the server serves no such path. An answer that is no such ``Status`` (a proxy's
    page) is taken as the path's: a deleted object's ``404`` always names it."""
    body = err.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if not isinstance(body, str) or len(body) > _STATUS_BODY:
        return False
    try:
        status = json.loads(body)
    except ValueError:
        return False
    details = status.get("details") if isinstance(status, dict) else None
    return isinstance(details, dict) and details.get("name") == name
