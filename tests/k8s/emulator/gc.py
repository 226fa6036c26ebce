"""The garbage collector: ownerReferences and the propagation policies of a delete.

As kube-controller-manager's garbage collector, from the Kubernetes docs ("Garbage
Collection", "Owners and Dependents", "Use Cascading Deletion"):

- an object whose owners are all gone is deleted (Background, unless its own finalizers ask
  for Orphan or Foreground); one that still has an existing owner only loses the references
  to the missing ones;
- a namespaced owner must be in the dependent's namespace, else it counts as absent;
- an owner deleted with ``Orphan`` carries the ``orphan`` finalizer until its dependents no
  longer reference it; one deleted with ``Foreground`` carries ``foregroundDeletion`` until the
  dependents that have ``blockOwnerDeletion: true`` are gone (the others are deleted too, but
  not waited for).

Unlike the real one, this collector runs synchronously at the end of the write that gave it
work, under the store's lock: when a DELETE answers, its cascade has been applied (dependents
that delete gracefully, such as running Pods, are then terminating).
"""

from __future__ import annotations

import copy
from collections import deque
from typing import TYPE_CHECKING, Any

from .strategy import BACKGROUND, FOREGROUND, ORPHAN

if TYPE_CHECKING:
    from .store import Store

Obj = dict[str, Any]
Ref = tuple[str, str, str]  # storage key, namespace ("" when cluster-scoped), name

ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"


def owner_uids(obj: Obj | None) -> list[str]:
    if obj is None:
        return []
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return [r["uid"] for r in refs if isinstance(r, dict) and isinstance(r.get("uid"), str)]


def _deleting_with(obj: Obj, finalizer: str) -> bool:
    meta = obj["metadata"]
    return bool(meta.get("deletionTimestamp")) and finalizer in (meta.get("finalizers") or [])


def _blocks(dependent: Obj, uid: str) -> bool:
    refs = dependent["metadata"].get("ownerReferences") or []
    return any(r.get("uid") == uid and r.get("blockOwnerDeletion") for r in refs)


class Collector:
    """The ownerReference index and the collector's work queue (the store's lock guards both)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.by_uid: dict[str, Ref] = {}
        self.dependents: dict[str, set[Ref]] = {}
        self._queue: deque[tuple[str, str]] = deque()
        self._running = False

    # --- index, fed by every committed change ----------------------------------------------

    def observe(self, key: str, event: str, obj: Obj, prev: Obj | None) -> None:
        meta = obj["metadata"]
        ref: Ref = (key, meta.get("namespace") or "", meta["name"])
        for uid in owner_uids(prev):
            self.dependents.get(uid, set()).discard(ref)
        if event == "DELETED":
            self.by_uid.pop(meta["uid"], None)
            for uid in owner_uids(obj):
                self.dependents.get(uid, set()).discard(ref)
                self._queue.append(("owner", uid))  # a foreground owner may be done now
            self._queue.append(("gone", meta["uid"]))
            return
        self.by_uid[meta["uid"]] = ref
        for uid in owner_uids(obj):
            self.dependents.setdefault(uid, set()).add(ref)
        for uid in {*owner_uids(prev), *owner_uids(obj)}:
            self._queue.append(("owner", uid))
        if owner_uids(obj):
            self._queue.append(("dependent", meta["uid"]))
        if meta.get("deletionTimestamp"):
            self._queue.append(("owner", meta["uid"]))

    def dependents_of(self, uid: str) -> list[Obj]:
        """The stored objects that name ``uid`` in their ownerReferences."""
        found = []
        for ref in sorted(self.dependents.get(uid, set())):
            obj = self._get(ref)
            if obj is not None and uid in owner_uids(obj):
                found.append(obj)
        return found

    # --- work -------------------------------------------------------------------------------

    def run(self) -> None:
        """Do the queued work, and the work it makes, until there is none."""
        if self._running:
            return
        self._running = True
        try:
            while self._queue:
                action, uid = self._queue.popleft()
                if action == "gone":
                    for dependent in self.dependents_of(uid):
                        self._attempt_to_delete(dependent)
                elif action == "dependent":
                    ref = self.by_uid.get(uid)
                    obj = self._get(ref) if ref else None
                    if obj is not None:
                        self._attempt_to_delete(obj)
                else:
                    self._process_owner(uid)
        finally:
            self._running = False

    def _get(self, ref: Ref) -> Obj | None:
        return self.store.data.get(ref[0], {}).get((ref[1], ref[2]))

    def _owner(self, dependent: Obj, uid: str) -> Obj | None:
        ref = self.by_uid.get(uid)
        if ref is None:
            return None
        dependent_ns = dependent["metadata"].get("namespace") or ""
        if ref[1] and ref[1] != dependent_ns:
            return None  # a namespaced owner elsewhere is treated as absent
        return self._get(ref)

    def _attempt_to_delete(self, obj: Obj) -> None:
        if obj["metadata"].get("deletionTimestamp"):
            return
        solid, dangling, waiting = [], [], []
        for uid in owner_uids(obj):
            owner = self._owner(obj, uid)
            if owner is None:
                dangling.append(uid)
            elif _deleting_with(owner, FOREGROUND_FINALIZER):
                waiting.append(uid)
            else:
                solid.append(uid)
        if not dangling and not waiting:
            return
        if solid:
            self._drop_owner_refs(obj, {*dangling, *waiting})
            return
        finalizers = obj["metadata"].get("finalizers") or []
        if waiting and self.dependents.get(obj["metadata"]["uid"]):
            policy = FOREGROUND
        elif ORPHAN_FINALIZER in finalizers:
            policy = ORPHAN
        elif FOREGROUND_FINALIZER in finalizers:
            policy = FOREGROUND
        else:
            policy = BACKGROUND
        self.store.delete_object(obj, policy, None)

    def _process_owner(self, uid: str) -> None:
        ref = self.by_uid.get(uid)
        owner = self._get(ref) if ref else None
        if owner is None or not owner["metadata"].get("deletionTimestamp"):
            return
        if _deleting_with(owner, ORPHAN_FINALIZER):
            for dependent in self.dependents_of(uid):
                self._drop_owner_refs(dependent, {uid})
            self.store.remove_finalizer(owner, ORPHAN_FINALIZER)
            return
        if not _deleting_with(owner, FOREGROUND_FINALIZER):
            return
        for dependent in self.dependents_of(uid):
            if not dependent["metadata"].get("deletionTimestamp"):
                has_own = bool(self.dependents.get(dependent["metadata"]["uid"]))
                self.store.delete_object(dependent, FOREGROUND if has_own else BACKGROUND, None)
        if not any(_blocks(d, uid) for d in self.dependents_of(uid)):
            current = self._get(ref) if ref else None
            if current is not None:
                self.store.remove_finalizer(current, FOREGROUND_FINALIZER)

    def _drop_owner_refs(self, obj: Obj, uids: set[str]) -> None:
        changed = copy.deepcopy(obj)
        refs = [
            r for r in changed["metadata"].get("ownerReferences") or [] if r.get("uid") not in uids
        ]
        if refs:
            changed["metadata"]["ownerReferences"] = refs
        else:
            changed["metadata"].pop("ownerReferences", None)
        self.store.rewrite(obj, changed)
