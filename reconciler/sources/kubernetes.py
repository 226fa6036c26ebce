"""The Kubernetes source: CronTask custom resources, listed and watched.

Contract (the :class:`~reconciler.sources.base.Source` protocol, plus):

- An :class:`~reconciler.sources.kubernetes_watch.Informer` keeps a cache of the CronTask
  objects of one namespace (or all); its events only call ``on_change(keys)`` (the runtime's
  "mark dirty"). ``refresh(hints)`` then rebuilds the definitions of those keys from the cache
  (level-triggered), ``definitions()``/``errors()`` are in-memory reads.
- A task is built from ``apiVersion``, ``kind``, ``metadata.name/namespace/labels/
  annotations`` and ``spec`` only: the server's metadata (uid, managedFields, ...) and the
  status never reach the model, so a status write never changes a definition.
- Labels and annotations crontask has no use for never make an object invalid (the API server
  takes more than the model holds): only those the model can hold reach the task, in the
  server's order while there is room, crontask's own (``crontask.dev/``) always, and checked.
- An object whose spec does not validate (the API server accepts a bad cron expression or
  zone) keeps its last good definition in force (its own, same uid: not that of a deleted
  object of the same name), flagged, and is reported as an error at
  ``Location("kubernetes", "NS/NAME")``: ``ops/backup: spec.schedule: ...``. So does one
  nested more than ``MAX_DEPTH`` levels deep (as a task file may be), which the informer's
  decoder cut short. A deleted object removes its task, the last one included: a list that
  worked is the cluster's state, so the source is ``authoritative`` (the reconciler's
  empty-set guard holds no removal of its tasks).
- It holds at most ``max_tasks`` CronTasks (``--max-tasks``, as a folder or git source holds
  at most that many tasks: ``taskbound``), so that whoever may create CronTasks in one namespace
  cannot grow crontask's memory, its scrapes and Prometheus's series without end. Every object
  not being deleted takes a place, valid or not, and keeps it until it is deleted: the places
  go oldest first (``creationTimestamp``, then namespace and name), at the first list and
  whenever a deletion leaves room, so a newer object never takes the place of a task in force,
  and a restart holds the same objects (but for objects created within the same second as the
  last one held: a restart orders those by name). A place is an object's, not its name's: one
  deleted and created again (another uid), even unseen, competes by its own age. One without a
  place is refused as an invalid spec is: no definition, and an error at its location, which
  its status condition shows (:mod:`~reconciler.sources.kubernetes_bound`).
- ``refresh`` reports a key as changed only when what a definition is built from (or the
  generation, or the uid) changed, so status-only watch events cause no work downstream.
- :meth:`KubernetesSource.objects` gives, per key, the object's uid, generation,
  resourceVersion, run-now annotation and stored status (:class:`ObjectRef`) for the status
  writer and the event recorder.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import functools
import logging
import os
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from kubernetes import client, config
from pydantic import ValidationError

from reconciler.aio import in_thread
from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.desired import Definition, DefinitionError, Location, SourceKind
from reconciler.core.model import API_GROUP, CronTask
from reconciler.core.status import RUN_NOW_ANNOTATION, ObjectRef
from reconciler.core.urls import redact_url
from reconciler.sources import kubeconfig
from reconciler.sources.base import Notify, Ready, SourceState
from reconciler.sources.documents import unexpected
from reconciler.sources.kubernetes_bound import Waiting, age, deleting, refusal
from reconciler.sources.kubernetes_document import document_of
from reconciler.sources.kubernetes_options import (  # re-exported: this module's contract
    KubernetesConfigError as KubernetesConfigError,
)
from reconciler.sources.kubernetes_options import KubernetesOptions as KubernetesOptions
from reconciler.sources.kubernetes_watch import Informer
from reconciler.sources.kubernetes_wire import MAX_DEPTH, PRUNED, pruned_path
from reconciler.sources.limits import DEFAULT_MAX_TASKS, excerpt
from reconciler.sources.messages import MAX_SHOWN, more_problems, problems

log = logging.getLogger("crontask.sources")

IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclasses.dataclass(frozen=True)
class Connection:
    api: Any  # the ApiClient
    watch: str | None  # the namespace to watch; None: all namespaces
    home: str  # the pod's own namespace in a cluster, else the kubeconfig context's


def connect(options: KubernetesOptions) -> Connection:
    """The API client and the namespaces that matter.

    Raises KubernetesConfigError when no configuration can be loaded."""
    try:
        return _connect(options)
    except (config.ConfigException, OSError, ValueError) as err:
        tried = options.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config or in-cluster"
        raise KubernetesConfigError(
            f"cannot load the Kubernetes configuration ({tried}): {err}"
        ) from None


def _connect(options: KubernetesOptions) -> Connection:
    explicit = options.kubeconfig or os.environ.get("KUBECONFIG")
    default_file = Path.home() / ".kube" / "config"
    # A context is a kubeconfig's: asked for one, the pod's own account is not a choice.
    in_pod = "KUBERNETES_SERVICE_HOST" in os.environ and options.context is None
    if explicit or (default_file.exists() and not in_pod):
        path = str(explicit or default_file)
        loaded = kubeconfig.load(path, options.context)
        api, namespace, context = loaded.api, loaded.namespace, loaded.context
    elif options.context is not None:
        raise config.ConfigException(f"no kubeconfig file to find the context {options.context} in")
    else:
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        api = client.ApiClient(configuration)
        namespace = (
            IN_CLUSTER_NAMESPACE.read_text().strip() if IN_CLUSTER_NAMESPACE.exists() else "default"
        )
        path, context = None, None
    watch = None if options.all_namespaces else options.namespace or namespace
    # Which cluster, as kubectl names it: a workstation's KUBECONFIG may hold several.
    log.info(
        "kubernetes: connecting",
        extra={
            "fields": {
                "kubeconfig": path or "(in-cluster)",
                "context": context,
                "server": redact_url(str(api.configuration.host)),
                "namespace": namespace,  # the context's (kubectl's), or the pod's
            }
        },
    )
    return Connection(api, watch, namespace)


def one_shot(api: Any) -> Any:
    """An ApiClient as ``api`` (server, credentials and their refresh, TLS, proxy, headers)
    that sends each request once, on a connection of its own: by default (``Retry(3)``)
    urllib3 sends a DELETE again on each read timeout (4 in all), and
    ``RESTClientObject.request`` passes no per-call retries; without them, a kept connection
    dropped on the way since its last use (a NAT's idle timeout) would fail the request."""
    configuration = copy.deepcopy(api.configuration)  # as the client's own get_default_copy
    configuration.retries = False  # errors raised as they are, at once
    plain = client.ApiClient(configuration, cookie=api.cookie)
    plain.default_headers = dict(api.default_headers)  # the User-Agent among them
    plain.default_headers["Connection"] = "close"
    return plain


def list_function(api: Any, namespace: str | None) -> Callable[..., Any]:
    """The informer's LIST (and WATCH) of the CronTasks of ``namespace`` (None: all). The
    informer asks for the raw response and reads it itself: against a deadline (a body that
    trickles), and decoded bounded in depth (a CronTask nested deeper than Python's decoder
    goes, which x-kubernetes-preserve-unknown-fields lets in, must not fail the list)."""
    # Any: the client's methods are untyped.
    objects: Any = client.CustomObjectsApi(api)
    if namespace is None:
        return functools.partial(objects.list_cluster_custom_object, API_GROUP, VERSION, PLURAL)
    return functools.partial(
        objects.list_namespaced_custom_object, API_GROUP, VERSION, namespace, PLURAL
    )


@dataclasses.dataclass(frozen=True, slots=True)
class _Entry:
    ref: ObjectRef
    fingerprint: str  # what the definition is built from, with the uid and generation
    good: Definition | None
    errors: tuple[DefinitionError, ...]

    def in_force(self) -> Definition | None:
        if self.good is None or not self.errors:
            return self.good
        return dataclasses.replace(self.good, error=str(self.errors[0]))


class KubernetesSource:
    kind = SourceKind.KUBERNETES

    def __init__(
        self,
        api: Any,
        namespace: str | None,
        *,
        on_change: Callable[[set[str]], None] = lambda keys: None,
        resync_seconds: float = 300.0,
        informer: Informer | None = None,
        max_tasks: int = DEFAULT_MAX_TASKS,
    ) -> None:
        if max_tasks < 1:
            raise ValueError("max_tasks must be positive")
        self.namespace = namespace
        self.max_tasks = max_tasks
        self._on_change = on_change
        self.first_list_wait = 30.0  # seconds watch() waits for the first list
        self.informer = informer or Informer(
            list_function(api, namespace),
            on_change=self._changed,
            resync_seconds=resync_seconds,
            name="kubernetes-watch",
            resource=f"{PLURAL}.{API_GROUP}",
        )
        self._entries: dict[str, _Entry] = {}
        self._waiting = Waiting()  # the keys of _entries refused for room
        # The ref made of each cached object by ``objects``, kept while the cache holds that
        # very object (it replaces, never mutates): a pass after an edit read every object
        # again, 0.2 s on the loop at 10 000 CronTasks.
        self._made: dict[str, tuple[dict[str, Any], ObjectRef]] = {}

    @property
    def location(self) -> str:
        return f"namespace {self.namespace}" if self.namespace else "all namespaces"

    def start(self, wait: float = 30.0) -> bool:
        """Start watching; wait up to ``wait`` seconds for the first list (True: listed)."""
        synced = self.informer.start(wait)
        if not synced:
            log.warning(
                "kubernetes: the first list has not succeeded yet; will keep trying",
                extra={"fields": {"error": self.informer.last_error}},
            )
        return synced

    def stop(self) -> None:
        self.informer.stop()

    def _changed(self, keys: set[str]) -> None:
        self._on_change(keys)

    @property
    def authoritative(self) -> bool:
        """Whether no definitions means no CronTasks, never a read gone wrong: true once a
        list worked (the cache only ever changes by a list or an event since)."""
        return self.informer.synced

    # -- its life --------------------------------------------------------------------------

    def status(self) -> SourceState:
        return SourceState(self.location, last_error=self.informer.last_error)

    async def watch(self, notify: Notify, ready: Ready, stop: asyncio.Event) -> None:
        """List and watch (in the informer's thread); ready once listed (up to
        ``first_list_wait`` seconds), so the first pass sees the objects; the keys that change
        are notified."""
        loop = asyncio.get_running_loop()

        def changed(keys: set[str]) -> None:
            # Called on the watch thread: only hand the keys over to the loop.
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(notify, keys)

        self._on_change = changed
        synced = await in_thread(self.start, self.first_list_wait)
        log.info(
            "kubernetes source started",
            extra={"fields": {"watching": self.location, "synced": synced}},
        )
        ready()
        await stop.wait()
        # Told to stop, not waited for: the Job watch, started before this source (whenever
        # there are CronTasks, ``controller.kube.jobs``) so stopped after it, waits for this
        # thread with its own, in one wait (``JobWatch(stops_with=...)``): a stop whose API
        # server does not answer waits ``STOP_WAIT`` for the watches, not once for each.
        await in_thread(self.informer.stop, 0.0)

    # -- the Source protocol ---------------------------------------------------------------

    def refresh(self, hints: Collection[str] | None = None) -> set[str]:
        if hints is None:
            cache = self.informer.snapshot()
            keys = set(cache) | set(self._entries)
        else:
            keys = set(hints)
            cache = self.informer.snapshot(keys)
        changed: set[str] = set()
        unplaced: dict[str, dict[str, Any]] = {}  # new objects, and those waiting for room
        for key in keys:
            obj = cache.get(key)
            before = self._entries.get(key)
            if obj is None or deleting(obj):
                if before is not None:
                    del self._entries[key]
                    self._waiting.discard(key)
                    changed.add(key)
                continue
            if before is None or key in self._waiting:
                unplaced[key] = obj
                continue
            if _uid(obj) != before.ref.uid:
                # Deleted and created again while the watch was away, or both in these hints:
                # another object, the newest. The place was the deleted one's; this one
                # competes by its own age, as it would after a restart or on another replica.
                del self._entries[key]
                unplaced[key] = obj
                continue
            self._store(key, self._read(obj, before), changed)
        return changed | self._place(unplaced)

    def definitions(self) -> list[Definition]:
        found = (e.in_force() for e in self._entries.values())
        return [d for d in found if d is not None]

    def definitions_of(self, keys: Collection[str]) -> list[Definition]:
        found = (e.in_force() for k in keys if (e := self._entries.get(k)) is not None)
        return [d for d in found if d is not None]

    def errors(self) -> list[DefinitionError]:
        found = [err for e in self._entries.values() for err in e.errors]
        # Listing keeps failing before anything was read (no RBAC, wrong namespace): say so.
        if not self.informer.synced and self.informer.last_error:
            where = Location(SourceKind.KUBERNETES, self.namespace or "*")
            found.append(
                DefinitionError(where, f"cannot list CronTasks: {self.informer.last_error}")
            )
        return found

    # -- for the status writer -------------------------------------------------------------

    def objects(self) -> dict[str, ObjectRef]:
        """Every object read, with the latest resourceVersion and status the cache holds."""
        latest = self.informer.snapshot(self._entries)
        refs: dict[str, ObjectRef] = {}
        made: dict[str, tuple[dict[str, Any], ObjectRef]] = {}
        for key, entry in self._entries.items():
            obj = latest.get(key)
            if obj is None:
                refs[key] = entry.ref
                continue
            before = self._made.get(key)
            ref = before[1] if before is not None and before[0] is obj else _ref(obj)
            made[key] = (obj, ref)
            refs[key] = ref
        self._made = made
        return refs

    def object_ref(self, key: str) -> ObjectRef | None:
        """The object of ``key`` as the cache holds it now (None: not read, or deleted)."""
        obj = self.informer.snapshot([key]).get(key)
        return _ref(obj) if obj is not None and key in self._entries else None

    def listed(self, key: str) -> ObjectRef | bool | None:
        """The object of ``key`` in the cache, valid or not; False once the CronTasks are
        listed and it is not there (or being deleted); None before (not known yet)."""
        if not self.informer.synced:
            return None
        obj = self.informer.snapshot([key]).get(key)
        return False if obj is None or deleting(obj) else _ref(obj)

    # -- the bound -------------------------------------------------------------------------

    def _place(self, unplaced: dict[str, dict[str, Any]]) -> set[str]:
        """Read the objects of ``unplaced`` while there is room, oldest first, and refuse the
        others. With room, the objects waiting since an earlier refresh compete too: the
        deletion that made room is all the refresh was told of."""
        room = self.max_tasks - (len(self._entries) - len(self._waiting))
        new = {key for key in unplaced if key not in self._waiting}
        for key, obj in unplaced.items():
            self._waiting.add(key, age(obj))
        changed: set[str] = set()
        if room > 0:
            self._fill(room, unplaced, changed)
        refused = 0
        for key, obj in unplaced.items():
            if key in self._waiting:
                refused += key in new
                self._refuse(key, obj, changed)
        if refused:
            log.warning(
                "kubernetes: CronTasks past --max-tasks refused; raise it to hold them",
                extra={"fields": {"refused": refused, "max_tasks": self.max_tasks}},
            )
        return changed

    def _fill(self, room: int, unplaced: dict[str, dict[str, Any]], changed: set[str]) -> None:
        """Give ``room`` places to the oldest objects waiting. One waiting since an earlier
        refresh is read from the cache now: gone or being deleted, it goes now, as the
        refresh told of it would remove it (kept waiting, a namespace's deletion had each pass
        pop every one of them again); created again unseen, it waits by its new age."""
        while room > 0 and (oldest := self._waiting.pop()) is not None:
            key = oldest[0]
            obj = unplaced.get(key)
            if obj is None:
                obj = self.informer.snapshot([key]).get(key)
                if obj is None or deleting(obj):
                    del self._entries[key]
                    changed.add(key)
                    continue
                if _uid(obj) != self._entries[key].ref.uid:
                    unplaced[key] = obj
                    self._waiting.add(key, age(obj))
                    continue
            room -= 1
            self._store(key, self._read(obj, self._entries.get(key)), changed)

    def _refuse(self, key: str, obj: dict[str, Any], changed: set[str]) -> None:
        """Refuse the object of ``key``: no definition, the bound as its error. Its spec is not
        read (it could be 1 MiB): the fingerprint is its uid's, so that only another object of
        the same name, not an edit, is a change; one refused already is not built again."""
        before = self._entries.get(key)
        ref = _ref(obj)
        if before is not None and before.fingerprint == f"refused {ref.uid}":
            self._entries[key] = dataclasses.replace(before, ref=ref)  # the cache's latest
        else:
            entry = _Entry(ref, f"refused {ref.uid}", None, (refusal(ref, self.max_tasks),))
            self._store(key, entry, changed)

    def _store(self, key: str, after: _Entry, changed: set[str]) -> None:
        before = self._entries.get(key)
        self._entries[key] = after
        if before is None or before.fingerprint != after.fingerprint:
            changed.add(key)

    # -- details ---------------------------------------------------------------------------

    def _read(self, obj: dict[str, Any], before: _Entry | None) -> _Entry:
        document, fingerprint = document_of(obj)
        ref = _ref(obj)
        if before is not None and before.fingerprint == fingerprint:
            return dataclasses.replace(before, ref=ref)
        # The last good definition is this object's only: one deleted and created again under
        # the same name while the watch was away (or between two passes) must not run the
        # deleted object's spec when its own does not validate.
        good = before.good if before is not None and before.ref.uid == ref.uid else None
        location = Location(SourceKind.KUBERNETES, ref.key)
        # What the informer's decoder left out shows in the fingerprint, which is cheaper to
        # search than the document; the walk then names where.
        if repr(PRUNED) in fingerprint and (where := pruned_path(document)) is not None:
            message = f"{excerpt(where)}: nested more than {MAX_DEPTH} levels deep (the limit)"
            return _Entry(ref, fingerprint, good, (DefinitionError(location, message, ref.key),))
        try:
            return _build(document, ref, fingerprint, good)
        except Exception as err:
            # A bug, not a bad spec (those are ValidationErrors): one object's must not fail the
            # refresh. This object's error, said as a file's is; every other object is read,
            # and this one's last good definition kept.
            error = unexpected(err, location, ref.key)
            return _Entry(ref, fingerprint, good, (error,))


def _build(
    document: dict[str, Any], ref: ObjectRef, fingerprint: str, good: Definition | None
) -> _Entry:
    """The entry of an object's ``document``: its definition, or its problems and ``good``."""
    location = Location(SourceKind.KUBERNETES, ref.key)
    try:
        task = CronTask.model_validate(document)
    except ValidationError as err:
        found, more = problems(err, MAX_SHOWN)
        errors = tuple(DefinitionError(location, str(p), ref.key) for p in found)
        if more:
            errors += (DefinitionError(location, more_problems(more, MAX_SHOWN), ref.key),)
        return _Entry(ref, fingerprint, good, errors)
    job = task.spec.job
    if job is not None and job.namespace not in (None, ref.namespace):
        message = (
            f"spec.job.namespace: a CronTask's Jobs go to its own namespace ({ref.namespace}), "
            "where their ownerReference to it can point; leave it out"
        )
        return _Entry(ref, fingerprint, good, (DefinitionError(location, message, ref.key),))
    return _Entry(ref, fingerprint, Definition.of(task, location), ())


def _uid(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def _ref(obj: dict[str, Any]) -> ObjectRef:
    meta = obj.get("metadata") or {}
    status = obj.get("status")
    return ObjectRef(
        namespace=meta.get("namespace") or "default",
        name=str(meta.get("name")),
        uid=_uid(obj),
        resource_version=str(meta.get("resourceVersion") or ""),
        generation=int(meta.get("generation") or 0),
        run_now=(meta.get("annotations") or {}).get(RUN_NOW_ANNOTATION),
        status=status if isinstance(status, dict) else {},
        api_version=str(obj.get("apiVersion") or f"{API_GROUP}/{VERSION}"),
        kind=str(obj.get("kind") or "CronTask"),
    )
