"""The generic object store: one global resourceVersion counter, an event history for watches,
and the write semantics of the real API server's generic registry (generation, status
subresource, optimistic concurrency, finalizers, no-op updates)."""

from __future__ import annotations

import bisect
import copy
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from . import crds, errors, naming, shapes
from .batch import JobStrategy
from .errors import ApiError
from .gc import FOREGROUND_FINALIZER, ORPHAN_FINALIZER, Collector
from .history import Expired, ListResult, WatchEvent, decode_continue, encode_continue
from .patch import apply_patch
from .pods import PodStrategy
from .selectors import Predicate
from .strategy import BACKGROUND, FOREGROUND, ORPHAN, Strategy
from .timefmt import now_rfc3339
from .types import BUILTINS, CRD_GROUP, Registry, ResourceType, validate_crd

Obj = dict[str, Any]

CRD_KEY = f"customresourcedefinitions.{CRD_GROUP}"
_GENERIC = Strategy()
STRATEGIES: dict[str, Strategy] = {"pods": PodStrategy(), "jobs.batch": JobStrategy()}
_POLICIES = (BACKGROUND, FOREGROUND, ORPHAN)

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
        self.collector = Collector(self)
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
                start = decode_continue(continue_token, self.floor)
            keys = sorted(
                k
                for k, o in self._bucket(rtype).items()
                if (ns is None or k[0] == ns) and (start is None or k > start) and match(o)
            )
            result = ListResult([], str(self.rv))
            if limit and len(keys) > limit:
                last = keys[limit - 1]
                result.remaining = len(keys) - limit
                result.continue_token = encode_continue(last, self.rv)
                keys = keys[:limit]
            result.items = [self.present(rtype, self._bucket(rtype)[k]) for k in keys]
            return result

    # --- watch support ----------------------------------------------------------------------

    def events_after(self, key: str, rv: int) -> list[WatchEvent]:
        """History events for ``key`` with a resourceVersion above ``rv`` (caller holds cond)."""
        start = bisect.bisect_right(self._history_rvs, rv)
        return [e for e in self.history[start:] if e.key == key]

    def events_since(self, rv: int) -> list[WatchEvent]:
        """History events of every resource after ``rv`` (caller holds cond)."""
        return self.history[bisect.bisect_right(self._history_rvs, rv) :]

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
        self.collector.observe(rtype.key, event, obj, prev)
        if rtype.key == CRD_KEY:
            crds.serve(self.registry, obj, deleted=event == "DELETED")
            if event == "DELETED":
                self.data.pop(crds.instances_key(obj), None)
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
        shapes.check(rtype.key, rtype.kind, rtype.version, obj)
        with self.cond:
            self._check_namespace(rtype, ns, obj)
            if not meta.get("name") and isinstance(meta.get("generateName"), str):
                meta["name"] = naming.generate(meta["generateName"])
            name = meta.get("name") or ""
            naming.validate_name(rtype, name)
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
                obj["status"] = crds.crd_status(obj, now_rfc3339())
            if rtype.key == "namespaces":
                obj["status"] = {"phase": "Active"}
            STRATEGIES.get(rtype.key, _GENERIC).prepare_create(obj)
            created = self.present(rtype, self._commit(rtype, obj, "ADDED"))
            self.collector.run()
            return created

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
            shapes.check(rtype.key, rtype.kind, rtype.version, result)
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
            result["status"] = crds.crd_status(result, now_rfc3339(), old)
        shapes.check(rtype.key, rtype.kind, rtype.version, result)
        STRATEGIES.get(rtype.key, _GENERIC).prepare_update(old, result)
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
        # The last finalizer gone ends a deletion, unless a graceful period still runs (a pod
        # whose kubelet has not yet stopped it: the kubelet's DELETE with grace 0 ends that).
        if (
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and not meta.get("deletionGracePeriodSeconds")
        ):
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
            written = self._finish_write(rtype, old, result)
            self.collector.run()
            return written, False

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
            written = self._finish_write(rtype, old, result)
            self.collector.run()
            return written

    def delete(self, rtype: ResourceType, ns: str | None, name: str, options: Obj | None) -> Obj:
        """DELETE with ``DeleteOptions`` (preconditions, ``propagationPolicy`` or the legacy
        ``orphanDependents``, ``gracePeriodSeconds``). A deletion that waits (finalizers, a
        graceful period) answers the object; an immediate one a ``Status`` for built-ins."""
        options = options or {}
        with self.cond:
            old = self._current(rtype, ns, name)
            _check_preconditions(rtype, name, old["metadata"], options.get("preconditions"))
            policy = options.get("propagationPolicy")
            if policy is None and isinstance(options.get("orphanDependents"), bool):
                policy = ORPHAN if options["orphanDependents"] else BACKGROUND
            policy = policy or STRATEGIES.get(rtype.key, _GENERIC).default_propagation
            if policy not in _POLICIES:
                raise errors.invalid(
                    "DeleteOptions",
                    "",
                    "",
                    "propagationPolicy",
                    f'Unsupported value: "{policy}": supported values: "Foreground", '
                    '"Background", "Orphan", "nil"',
                )
            grace = options.get("gracePeriodSeconds")
            state, gone = self.delete_object(old, policy, grace if isinstance(grace, int) else None)
            answer = self.present(rtype, state)
            self.collector.run()
            if not gone or rtype.return_deleted_object:
                return answer
            details: Obj = {"name": name, "kind": rtype.plural, "uid": answer["metadata"]["uid"]}
            if rtype.group:
                details["group"] = rtype.group
            return {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            }

    def delete_object(self, obj: Obj, policy: str, grace: int | None) -> tuple[Obj, bool]:
        """Start deleting a stored object (caller holds ``cond``): with finalizers (incl. the
        propagation policy's) or a graceful period it is marked, otherwise removed. Returns the
        state stored (or removed) and whether the object is gone."""
        rtype = self._type_of(obj)
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            # Already being deleted: only a DELETE with gracePeriodSeconds=0 (the kubelet, or
            # kubectl --force) can end a graceful deletion early.
            if grace == 0 and meta.get("deletionGracePeriodSeconds") and not meta.get("finalizers"):
                return self._commit(rtype, copy.deepcopy(obj), "DELETED"), True
            return obj, False
        finalizers = [
            f
            for f in meta.get("finalizers") or []
            if f not in (ORPHAN_FINALIZER, FOREGROUND_FINALIZER)
        ]
        if policy == ORPHAN:
            finalizers.append(ORPHAN_FINALIZER)
        elif policy == FOREGROUND:
            finalizers.append(FOREGROUND_FINALIZER)
        period = STRATEGIES.get(rtype.key, _GENERIC).grace_seconds(obj, grace)
        if not finalizers and period == 0:
            return self._commit(rtype, copy.deepcopy(obj), "DELETED"), True
        pending = copy.deepcopy(obj)
        stamp = datetime.now(UTC) + timedelta(seconds=period)
        pending["metadata"]["deletionTimestamp"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
        pending["metadata"]["deletionGracePeriodSeconds"] = period
        if finalizers:
            pending["metadata"]["finalizers"] = finalizers
        return self._commit(rtype, pending, "MODIFIED"), False

    def remove_finalizer(self, obj: Obj, finalizer: str) -> None:
        """Drop one finalizer of a stored object (caller holds ``cond``); the last one going
        ends a pending deletion."""
        changed = copy.deepcopy(obj)
        left = [f for f in changed["metadata"].get("finalizers") or [] if f != finalizer]
        if left:
            changed["metadata"]["finalizers"] = left
        else:
            changed["metadata"].pop("finalizers", None)
        self.rewrite(obj, changed)

    def rewrite(self, old: Obj, new: Obj) -> Obj:
        """Store a new state of a stored object as a controller would, without the API's
        validation (caller holds ``cond``). Returns it as stored."""
        return self._finish_write(self._type_of(old), old, new)

    def _type_of(self, obj: Obj) -> ResourceType:
        group = obj["apiVersion"].rpartition("/")[0]
        rtype = self.registry.for_object(group, obj["kind"])
        assert rtype is not None, f"no type serves {obj['apiVersion']} {obj['kind']}"
        return rtype

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

    def _drop_crd_instances(self, crd: Obj) -> None:
        rtype = self.registry.by_key(crds.instances_key(crd))
        if rtype is not None:
            for obj in list(self._bucket(rtype).values()):
                self._commit(rtype, copy.deepcopy(obj), "DELETED")


def _check_preconditions(rtype: ResourceType, name: str, meta: Obj, pre: Any) -> None:
    pre = pre if isinstance(pre, dict) else {}
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
            f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
            f"ResourceVersion in object meta: {meta['resourceVersion']}",
        )
