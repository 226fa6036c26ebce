"""The ``/status`` subresource of one CronTask, as the status writer calls it: a merge patch
that carries the version it was computed from, and the read after a ``409 Conflict`` (or a
``404`` that does not name the object).

Contract:

- :meth:`StatusApi.patch` sends one merge patch of the status, never of the main resource (so
  it can never bump ``metadata.generation``). It returns what the server answered (the object's
  new version and status), or None if the answer was no object; it raises what the client
  raises (``ApiException``, a connection error).
- :meth:`StatusApi.read` never raises: it answers a :class:`Reading`, whose :class:`Read` says
  what to do next: ``FRESH`` (read: compute again on it at once), ``GONE`` (deleted: a ``404``
  that names it; or another object, its uid differs, has the name now: drop the write),
  ``UNSERVED`` (a ``404`` that does not name it: the server serves no such path, its CRD is
  missing, has no ``/status``, or its handler is not ready yet: not read, try again after a
  backoff, within the writer's one round for such a write), ``FAILED`` (``429``, ``5xx``, a
  connection error, an answer that is no object: not read, so try again after a backoff, not
  at once on the same stale version), ``REFUSED`` (another status, e.g. ``403``: the error is
  given).
- Answers are read undecoded and decoded bounded in depth (:func:`decoded`).
- :func:`said` puts a failed request in a few words for the log (the status writer's and the
  Event recorder's), bounded.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from reconciler.core import jsondepth
from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.model import API_GROUP
from reconciler.core.status import ObjectRef
from reconciler.sinks.kubernetes_refusals import names_object

MERGE_PATCH = "application/merge-patch+json"
# Worth trying again after a backoff; any other refusal stays a refusal.
RETRIED = frozenset({429, 500, 502, 503, 504})
# Deeper than any field of a CronTask's status or metadata this sink reads.
_ANSWER_DEPTH = 32
_TIMEOUT = (10, 30)
# The error a "status write failed; retrying" line gives, at most (a connection error's text
# names the URL and the cause, a few hundred characters).
ERROR_CHARS = 300


@dataclasses.dataclass(frozen=True, slots=True)
class Seen:
    """One object as the server returned it: uid (a deleted and re-created object starts from
    its own, empty status), resourceVersion, status."""

    uid: str
    resource_version: str
    status: Mapping[str, Any]


class Read(enum.Enum):
    FRESH = "fresh"
    GONE = "gone"
    UNSERVED = "unserved"
    FAILED = "failed"
    REFUSED = "refused"


@dataclasses.dataclass(frozen=True, slots=True)
class Reading:
    outcome: Read
    seen: Seen | None = None  # with FRESH
    error: ApiException | None = None  # with REFUSED


class StatusApi:
    def __init__(self, api: Any) -> None:
        self._objects = client.CustomObjectsApi(api)

    def patch(self, ref: ObjectRef, resource_version: str, patch: dict[str, Any]) -> Seen | None:
        """One merge patch of the status of ``ref``'s object, computed at ``resource_version``."""
        answer = self._objects.patch_namespaced_custom_object_status(
            API_GROUP,
            VERSION,
            ref.namespace,
            PLURAL,
            ref.name,
            # The version the patch was computed from: a write made meanwhile by anyone makes
            # the server answer 409 instead of losing it.
            {"metadata": {"resourceVersion": resource_version}, "status": patch},
            _content_type=MERGE_PATCH,
            _request_timeout=_TIMEOUT,
            _preload_content=False,
        )
        return seen_of(ref.uid, decoded(answer))

    def read(self, ref: ObjectRef) -> Reading:
        """The object of ``ref`` read again (after a conflict, or a ``404`` that does not name
        it); see the module docstring."""
        try:
            obj = decoded(
                self._objects.get_namespaced_custom_object_status(
                    API_GROUP,
                    VERSION,
                    ref.namespace,
                    PLURAL,
                    ref.name,
                    _request_timeout=_TIMEOUT,
                    _preload_content=False,
                )
            )
        except ApiException as err:
            if err.status == 404:
                return Reading(Read.GONE if names_object(err, ref.name) else Read.UNSERVED)
            if err.status in RETRIED:
                return Reading(Read.FAILED)
            return Reading(Read.REFUSED, error=err)
        except Exception:  # connection refused, reset, timeout
            return Reading(Read.FAILED)
        seen = seen_of(ref.uid, obj)
        if seen is None:
            return Reading(Read.FAILED)
        uid = obj["metadata"].get("uid")
        if uid is not None and uid != ref.uid:
            return Reading(Read.GONE)
        return Reading(Read.FRESH, seen)


def decoded(answer: object) -> Any:
    """The object of an answer asked for undecoded (``_preload_content=False``), read whatever
    its depth (a spec may nest as deep as the API server allows, and the client's own decoding
    then raised RecursionError on every write): what lies deeper than any status field is
    left out. None if it is no JSON."""
    data = getattr(answer, "data", None)
    if not isinstance(data, bytes):
        return None
    try:
        return jsondepth.decode(data, _ANSWER_DEPTH)
    except ValueError:
        return None


def seen_of(uid: str, obj: Any) -> Seen | None:
    """The version and status of an object the server returned (None if it is not one)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
        return None
    version = obj["metadata"].get("resourceVersion")
    status = obj.get("status")
    if not isinstance(version, str):
        return None
    return Seen(uid, version, status if isinstance(status, dict) else {})


def newer(ours: str, theirs: str) -> bool:
    """Whether resourceVersion ``ours`` is newer than ``theirs``. Versions are opaque, but every
    API server in use (etcd's revisions) issues increasing integers; anything else is taken as
    not newer, so the informer's view (fresh from the server) wins."""
    if ours.isdigit() and theirs.isdigit():
        return int(ours) > int(theirs)
    return False


def said(err: Exception) -> str:
    """A failed request in a few words for the log: the API server's status and reason, or
    the error's type and (bounded) text: of its cause, when it has one (urllib3's
    ``MaxRetryError`` names the URL first, and what refused or reset comes last)."""
    if isinstance(err, ApiException):
        return f"HTTP {err.status}: {err.reason}"
    cause = getattr(err, "reason", None)
    if isinstance(cause, Exception):
        err = cause
    return f"{type(err).__name__}: {err}"[:ERROR_CHARS]
