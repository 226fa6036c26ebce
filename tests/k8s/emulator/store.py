"""The generic object store: one global resourceVersion counter, an event history for watches,
and the write semantics of the real API server's generic registry (generation, status
subresource, optimistic concurrency, finalizers, no-op updates)."""

from __future__ import annotations

import base64
import binascii
import bisect
import copy
import json
import random
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import errors
from .errors import ApiError
from .patch import apply_patch
from .selectors import Predicate
from .types import BUILTINS, CRD_GROUP, Registry, ResourceType, crd_resource_types, validate_crd

Obj = dict[str, Any]

CRD_KEY = f"customresourcedefinitions.{CRD_GROUP}"

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    r"for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_IMMUTABLE_META = (
    "uid",
    "creationTimestamp",
    "name",
    "namespace",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generateName",
)
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class WatchEvent:
    rv: int
    key: str
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj
    prev: Obj | None = None  # the state before a MODIFIED, for selector transitions

    def for_watcher(self, passes: Predicate) -> tuple[str, Obj] | None:
        """The event as a filtered watch sees it: an object that starts matching the filter is
        ADDED, one that stops matching is DELETED (its previous state, at this event's
        resourceVersion), as the real server's watch cache does."""
        if self.type != "MODIFIED" or self.prev is None:
            return (self.type, self.obj) if passes(self.obj) else None
        now, before = passes(self.obj), passes(self.prev)
        if now and before:
            return "MODIFIED", self.obj
        if now:
            return "ADDED", self.obj
        if before:
            gone = copy.deepcopy(self.prev)
            gone["metadata"]["resourceVersion"] = str(self.rv)
            return "DELETED", gone
        return None


@dataclass
class ListResult:
    items: list[Obj]
    resource_version: str
    continue_token: str = ""
    remaining: int | None = None


class Expired(ApiError):
    """A resourceVersion older than the retained history."""


def _qualified(rtype: ResourceType) -> tuple[str, str]:
    return rtype.plural, rtype.group


class Store:
    def __init__(self) -> None:
        self.cond = threading.Condition(threading.RLock())
        self.registry = Registry()
        for rtype in BUILTINS:
            self.registry.add(rtype)
        self.rv = 0
        self.floor = 0  # watches from a resourceVersion below this get 410 Expired
        self.history: list[WatchEvent] = []
        self._history_rvs: list[int] = []
        self.data: dict[str, dict[tuple[str, str], Obj]] = {}
        namespaces = self.registry.lookup("", "v1", "namespaces")
        assert namespaces is not None
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create(namespaces, None, {"metadata": {"name": ns}})

    # --- reading ----------------------------------------------------------------------------

    def resolve(self, group: str, version: str, plural: str) -> ResourceType:
        with self.cond:
            rtype = self.registry.lookup(group, version, plural)
        if rtype is None:
            raise ApiError(
                404,
                "the server could not find the requested resource",
                details={
                    "causes": [
                        {"reason": "UnexpectedServerResponse", "message": "404 page not found"}
                    ]
                },
            )
        return rtype

    def present(self, rtype: ResourceType, obj: Obj) -> Obj:
        """A copy of a stored object as the given version serves it."""
        out = copy.deepcopy(obj)
        out["apiVersion"] = rtype.api_version
        out["kind"] = rtype.kind
        return {"apiVersion": out.pop("apiVersion"), "kind": out.pop("kind"), **out}

    def _bucket(self, rtype: ResourceType) -> dict[tuple[str, str], Obj]:
        return self.data.setdefault(rtype.key, {})

    def _current(self, rtype: ResourceType, ns: str | None, name: str) -> Obj:
        obj = self._bucket(rtype).get((ns or "", name))
        if obj is None:
            raise errors.not_found(*_qualified(rtype), name)
        return obj

    def get(self, rtype: ResourceType, ns: str | None, name: str) -> Obj:
        with self.cond:
            return self.present(rtype, self._current(rtype, ns, name))

    def snapshot(self, key: str) -> list[Obj]:
        with self.cond:
            bucket = self.data.get(key, {})
            return [copy.deepcopy(bucket[k]) for k in sorted(bucket)]

    def list_objects(
        self,
        rtype: ResourceType,
        ns: str | None,
        match: Predicate,
        limit: int = 0,
        continue_token: str = "",
    ) -> ListResult:
        with self.cond:
            start: tuple[str, str] | None = None
            if continue_token:
                start = self._decode_continue(continue_token)
            keys = sorted(
                k
                for k, o in self._bucket(rtype).items()
                if (ns is None or k[0] == ns) and (start is None or k > start) and match(o)
            )
            result = ListResult([], str(self.rv))
            if limit and len(keys) > limit:
                last = keys[limit - 1]
                result.remaining = len(keys) - limit
                result.continue_token = self._encode_continue(last)
                keys = keys[:limit]
            result.items = [self.present(rtype, self._bucket(rtype)[k]) for k in keys]
            return result

    def _encode_continue(self, after: tuple[str, str]) -> str:
        raw = json.dumps({"v": "meta.k8s.io/v1", "rv": self.rv, "start": list(after)})
        return base64.urlsafe_b64encode(raw.encode()).decode()

    def _decode_continue(self, token: str) -> tuple[str, str]:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
            rv, start = int(decoded["rv"]), decoded["start"]
        except (ValueError, KeyError, TypeError, binascii.Error) as e:
            raise errors.bad_request(f"continue key is not valid: {e}") from e
        if rv < self.floor:
            raise Expired(
                410,
                "The provided continue parameter is too old to display a consistent list result. "
                "You can start a new list without the continue parameter.",
                reason="Expired",
            )
        return (start[0], start[1])

    # --- watch support ----------------------------------------------------------------------

    def events_after(self, key: str, rv: int) -> list[WatchEvent]:
        """History events for ``key`` with a resourceVersion above ``rv`` (caller holds cond)."""
        start = bisect.bisect_right(self._history_rvs, rv)
        return [e for e in self.history[start:] if e.key == key]

    def check_watch_rv(self, rv: int) -> None:
        if rv < self.floor:
            raise Expired(410, f"too old resource version: {rv} ({self.floor})", reason="Expired")

    def compact(self) -> None:
        """Forget history: a watch from before now gets 410. Open watches keep streaming."""
        with self.cond:
            self.floor = self.rv

    # --- writing ----------------------------------------------------------------------------

    def _commit(self, rtype: ResourceType, obj: Obj, event: str) -> Obj:
        """Store (or, for DELETED, remove) ``obj`` under a new resourceVersion; record the event."""
        if rtype.key == CRD_KEY and event == "DELETED":
            self._drop_crd_instances(obj)  # the instances go first, then the definition
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        k = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        prev = self._bucket(rtype).get(k) if event == "MODIFIED" else None
        if event == "DELETED":
            self._bucket(rtype).pop(k, None)
        else:
            self._bucket(rtype)[k] = obj
        self.history.append(WatchEvent(self.rv, rtype.key, event, copy.deepcopy(obj), prev))
        self._history_rvs.append(self.rv)
        if rtype.key == CRD_KEY:
            self._crd_changed(obj, event)
        self.cond.notify_all()
        return obj

    def _check_namespace(self, rtype: ResourceType, ns: str | None, body: Obj) -> None:
        meta = body["metadata"]
        if rtype.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)

    def _check_kind(self, rtype: ResourceType, body: Obj) -> None:
        if body.get("kind") not in (None, rtype.kind):
            raise errors.bad_request(
                f"the kind in the data ({body['kind']}) does not match the expected kind "
                f"({rtype.kind})"
            )

    def create(self, rtype: ResourceType, ns: str | None, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        obj = copy.deepcopy(body)
        self._check_kind(rtype, obj)
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        with self.cond:
            self._check_namespace(rtype, ns, obj)
            if not meta.get("name") and meta.get("generateName"):
                suffix = "".join(random.choices(_GENERATE_ALPHABET, k=5))  # noqa: S311
                meta["name"] = meta["generateName"] + suffix
            name = meta.get("name") or ""
            self._validate_name(rtype, name)
            if meta.get("resourceVersion"):
                raise ApiError(
                    500,
                    "Internal error occurred: resourceVersion should not be set on objects to be "
                    "created",
                )
            if (meta.get("namespace", ""), name) in self._bucket(rtype):
                raise errors.already_exists(*_qualified(rtype), name)
            obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            for field in ("deletionTimestamp", "deletionGracePeriodSeconds"):
                meta.pop(field, None)
            if rtype.tracks_generation:
                meta["generation"] = 1
            if rtype.status_subresource:
                obj.pop("status", None)  # create cannot set status
            if rtype.key == CRD_KEY:
                validate_crd(obj)
                obj["status"] = self._crd_status(obj)
            if rtype.key == "namespaces":
                obj["status"] = {"phase": "Active"}
            return self.present(rtype, self._commit(rtype, obj, "ADDED"))

    def _validate_name(self, rtype: ResourceType, name: str) -> None:
        if not name:
            raise errors.invalid(
                rtype.kind,
                rtype.group,
                name,
                "metadata.name",
                "Required value: name or generateName is required",
            )
        pattern, message, limit = (
            (_LABEL, _LABEL_MSG, 63)
            if rtype.key == "namespaces"
            else (_SUBDOMAIN, _SUBDOMAIN_MSG, 253)
        )
        if not pattern.match(name) or len(name) > limit:
            raise errors.invalid(
                rtype.kind,
                rtype.group,
                name,
                "metadata.name",
                f'Invalid value: "{name}": {message}',
            )

    def _prepare_update(
        self, rtype: ResourceType, old: Obj, new: Obj, subresource: str | None
    ) -> Obj:
        """The object a write would store: immutable fields and the status subresource rules
        applied, generation bumped when the spec changed."""
        if subresource == "status":
            result = copy.deepcopy(old)
            if "status" in new:
                result["status"] = copy.deepcopy(new["status"])
            else:
                result.pop("status", None)
            return result
        result = copy.deepcopy(new)
        meta = result.get("metadata")
        if not isinstance(meta, dict):
            meta = result["metadata"] = {}
        for field in _IMMUTABLE_META:
            if field in old["metadata"]:
                meta[field] = old["metadata"][field]
            else:
                meta.pop(field, None)
        result["apiVersion"], result["kind"] = old["apiVersion"], old["kind"]
        if rtype.status_subresource:
            if "status" in old:
                result["status"] = copy.deepcopy(old["status"])
            else:
                result.pop("status", None)
        if rtype.key == CRD_KEY:
            validate_crd(result)
            result["status"] = self._crd_status(result, old)
        if rtype.tracks_generation and self._spec(rtype, result) != self._spec(rtype, old):
            meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        return result

    @staticmethod
    def _spec(rtype: ResourceType, obj: Obj) -> Obj:
        skip = {"metadata", "apiVersion", "kind"} | (
            {"status"} if rtype.status_subresource else set()
        )
        return {k: v for k, v in obj.items() if k not in skip}

    def _finish_write(self, rtype: ResourceType, old: Obj, result: Obj) -> Obj:
        result["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if result == old:  # a no-op write: no new resourceVersion, no watch event
            return self.present(rtype, old)
        meta = result["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self.present(rtype, self._commit(rtype, result, "DELETED"))
        return self.present(rtype, self._commit(rtype, result, "MODIFIED"))

    def update(
        self, rtype: ResourceType, ns: str | None, name: str, body: Any, subresource: str | None
    ) -> tuple[Obj, bool]:
        """PUT. Returns the stored object and whether it was created."""
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        self._check_kind(rtype, body)
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        assert isinstance(meta, dict)
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})"
            )
        with self.cond:
            old = self._bucket(rtype).get((ns or "", name))
            if old is None:
                if rtype.create_on_update and subresource is None:
                    body = {**body, "metadata": {**meta, "name": name}}
                    body["metadata"].pop("resourceVersion", None)
                    return self.create(rtype, ns, body), True
                raise errors.not_found(*_qualified(rtype), name)
            if meta.get("namespace") and rtype.namespaced and meta["namespace"] != ns:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            rv = meta.get("resourceVersion")
            if not rv and not rtype.unconditional_update:
                raise errors.invalid(
                    rtype.kind,
                    rtype.group,
                    name,
                    "metadata.resourceVersion",
                    "Invalid value: 0x0: must be specified for an update",
                )
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(*_qualified(rtype), name)
            result = self._prepare_update(rtype, old, body, subresource)
            return self._finish_write(rtype, old, result), False

    def patch(
        self,
        rtype: ResourceType,
        ns: str | None,
        name: str,
        content_type: str,
        patch: Any,
        subresource: str | None,
    ) -> Obj:
        with self.cond:
            old = self._current(rtype, ns, name)
            patched = apply_patch(
                content_type, self.present(rtype, old), patch, strategic_ok=rtype.strategic_merge
            )
            if not isinstance(patched, dict):
                raise ApiError(422, "the patched object is not a JSON object", reason="Invalid")
            meta = patched.get("metadata") if isinstance(patched.get("metadata"), dict) else {}
            assert isinstance(meta, dict)
            rv = meta.get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(*_qualified(rtype), name)
            result = self._prepare_update(rtype, old, patched, subresource)
            return self._finish_write(rtype, old, result)

    def delete(self, rtype: ResourceType, ns: str | None, name: str, options: Obj | None) -> Obj:
        with self.cond:
            old = self._current(rtype, ns, name)
            pre = (options or {}).get("preconditions") or {}
            meta = old["metadata"]
            if pre.get("uid") and pre["uid"] != meta["uid"]:
                raise errors.conflict(
                    *_qualified(rtype),
                    name,
                    f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                    f"{meta['uid']}",
                )
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
                raise errors.conflict(
                    *_qualified(rtype),
                    name,
                    f"Precondition failed: ResourceVersion in precondition: "
                    f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                    f"{meta['resourceVersion']}",
                )
            if meta.get("finalizers"):
                if meta.get("deletionTimestamp"):
                    return self.present(rtype, old)
                pending = copy.deepcopy(old)
                pending["metadata"]["deletionTimestamp"] = now_rfc3339()
                pending["metadata"]["deletionGracePeriodSeconds"] = 0
                return self.present(rtype, self._commit(rtype, pending, "MODIFIED"))
            gone = self.present(rtype, self._commit(rtype, copy.deepcopy(old), "DELETED"))
            if rtype.return_deleted_object:
                return gone
            details: Obj = {"name": name, "kind": rtype.plural, "uid": gone["metadata"]["uid"]}
            if rtype.group:
                details["group"] = rtype.group
            return {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            }

    def delete_collection(self, rtype: ResourceType, ns: str | None, match: Predicate) -> Obj:
        with self.cond:
            listed = self.list_objects(rtype, ns, match)
            for item in listed.items:
                meta = item["metadata"]
                self.delete(rtype, meta.get("namespace"), meta["name"], None)
            return {
                "apiVersion": rtype.api_version,
                "kind": rtype.list_kind,
                "metadata": {"resourceVersion": str(self.rv)},
                "items": listed.items,
            }

    # --- CRDs -------------------------------------------------------------------------------

    @staticmethod
    def _crd_status(crd: Obj, old: Obj | None = None) -> Obj:
        spec = crd["spec"]
        names = copy.deepcopy(spec["names"])
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
        old_conditions = (old or {}).get("status", {}).get("conditions") or [{}]
        stamp = old_conditions[0].get("lastTransitionTime") or now_rfc3339()
        return {
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "lastTransitionTime": stamp,
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                },
                {
                    "type": "Established",
                    "status": "True",
                    "lastTransitionTime": stamp,
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                },
            ],
            "acceptedNames": names,
            "storedVersions": [v["name"] for v in spec["versions"] if v.get("storage")],
        }

    def _drop_crd_instances(self, crd: Obj) -> None:
        rtype = self.registry.by_key(f"{crd['spec']['names']['plural']}.{crd['spec']['group']}")
        if rtype is not None:
            for obj in list(self._bucket(rtype).values()):
                self._commit(rtype, copy.deepcopy(obj), "DELETED")

    def _crd_changed(self, crd: Obj, event: str) -> None:
        group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
        if event == "DELETED":
            self.registry.remove_group_resource(group, plural)
            self.data.pop(f"{plural}.{group}", None)
            return
        self.registry.remove_group_resource(group, plural)
        for rtype in crd_resource_types(crd):
            self.registry.add(rtype)
