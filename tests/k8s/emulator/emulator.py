"""``Emulator``: a Kubernetes API server emulator on 127.0.0.1 for tests."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
from pathlib import Path
from types import TracebackType

from . import errors
from .errors import ApiError, status_body
from .kubelet import Kubelet
from .podlogs import LogOptions
from .processes import LogBuffer
from .server import RequestRecord, Server, WatchStream
from .store import Obj, Store
from .workloads import Workloads

_REASONS_5XX = {
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
    429: "TooManyRequests",
}


class Emulator:
    """A real HTTP server that the official ``kubernetes`` client and ``kubectl`` talk to.

    Use as a context manager, or ``start()`` / ``stop()``. ``url`` is set once started.

    ``run_jobs=True`` adds the Job controller and kubelet doubles: each Job gets pods whose
    containers run as local processes (``pod_backoff``: the fixed delay before a failed pod
    is replaced or a container restarted; ``max_grace_period``: the cap on a deleted pod's
    ``terminationGracePeriodSeconds`` before its processes are killed; ``max_pods``: the node's
    capacity, beyond which pods stay Pending, Unschedulable). ``stop()`` kills them all.
    """

    def __init__(
        self,
        *,
        bookmark_interval: float = 1.0,
        run_jobs: bool = False,
        pod_backoff: float = 0.05,
        max_grace_period: float = 1.0,
        max_pods: int = 110,
    ) -> None:
        self.bookmark_interval = bookmark_interval
        # False: watches ignore timeoutSeconds and stay open (as behind some proxies).
        self.watch_timeouts = True
        self.run_jobs = run_jobs
        self.pod_backoff = pod_backoff
        self.max_grace_period = max_grace_period
        self.max_pods = max_pods
        self.workloads: Workloads | None = None
        self.stopped = threading.Event()  # ends log streams that follow a container
        self.store = Store()
        # Placeholder string -> raw JSON served in its place (quotes included), for objects
        # nested deeper than Python's decoder goes: a real API server accepts 10 000 levels.
        self.raw_values: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.request_log: list[RequestRecord] = []
        self.server_errors: list[str] = []  # tracebacks of emulator bugs (answered with 500)
        self.url = ""
        self.port = 0
        self._lock = threading.Lock()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._connections: set[socket.socket] = set()
        self._watches: set[WatchStream] = set()
        self._conflicts = 0
        self._errors: list[tuple[int, re.Pattern[str]]] = []  # (status, path), one each
        self._unserved: list[tuple[str, re.Pattern[str]]] = []  # (method, path), one each
        self._outage: tuple[int | None, float] | None = None  # (status, delay) until heal()
        self._healed = threading.Event()
        self._holds: list[tuple[str, re.Pattern[str]]] = []  # (method, path) until release()
        self._released = threading.Event()

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._server = Server(self)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"k8s-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        if self.run_jobs:
            base_env = {
                "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
                "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                "KUBERNETES_SERVICE_PORT": str(self.port),
            }
            self.workloads = Workloads(
                self.store,
                self.server_errors.append,
                base_env,
                self.pod_backoff,
                self.max_grace_period,
                self.max_pods,
            )
            self.workloads.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self.stopped.set()
        if self.workloads is not None:
            self.workloads.stop()
        with self.store.cond:
            self._stopping = True
            self.store.cond.notify_all()
        self._healed.set()  # requests held by an outage's delay end now
        self._released.set()  # and those held unanswered (``hold``)
        self._server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # wake handlers idling on keep-alive connections
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()  # joins the handler threads
        if self._thread is not None:
            self._thread.join()
        self._server = None

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """A kubeconfig (no auth, plain http) for kubectl and ``kubernetes.config``."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "emulator", "user": {}}],
            "contexts": [
                {
                    "name": "emulator",
                    "context": {"cluster": "emulator", "user": "emulator", "namespace": namespace},
                }
            ],
            "current-context": "emulator",
            "preferences": {},
        }
        path.write_text(json.dumps(config, indent=2) + "\n")
        return path

    # --- fault hooks ------------------------------------------------------------------------

    def compact(self) -> None:
        """Forget history: later watches from an older resourceVersion get 410 Expired."""
        self.store.compact()

    def inject_conflict(self, times: int = 1) -> None:
        """The next ``times`` writes (PUT/PATCH, incl. ``/status``) answer 409 Conflict."""
        with self._lock:
            self._conflicts += times

    def inject_errors(self, status: int = 503, times: int = 1, path: str = "") -> None:
        """The next ``times`` requests (any; with ``path``, those whose path the regular
        expression matches, ``re.search``) answer ``status`` with a ``Status`` body."""
        with self._lock:
            self._errors.extend([(status, re.compile(path))] * times)

    def inject_not_served(self, method: str, path: str, times: int = 1) -> None:
        """The next ``times`` ``method`` requests whose path the regular expression ``path``
        matches (``re.search``) answer ``404`` ``the server could not find the requested
        resource``, no details: what a kube-apiserver answers for a custom resource's path
        while its CRD's handler is not ready (just after a restart), unlike a missing object's
        ``404``, which names it."""
        with self._lock:
            self._unserved.extend([(method, re.compile(path))] * times)

    def outage(self, status: int | None = 503, *, delay: float = 0.0) -> None:
        """Until :meth:`heal`, every request (watches included) is held ``delay`` seconds, as by
        a server that hangs, then answers ``status`` with a ``Status`` body (``None``: its
        normal answer, late). Open watches go on; ``cut_watches()`` ends them."""
        with self._lock:
            self._outage = (status, delay)
            self._healed.clear()

    def heal(self) -> None:
        """End the outage; requests held by its delay get their normal answer at once."""
        with self._lock:
            self._outage = None
            self._healed.set()

    def hold(self, method: str, path: str = "") -> None:
        """Until :meth:`release`, every ``method`` request whose path the regular expression
        ``path`` matches (``re.match``) is read and then never answered, as by an API server
        that took it and hangs: only the client's read timeout ends it on its side. It is
        recorded (``requests``), not carried out; released (or at ``stop()``), its connection
        is closed with no answer."""
        with self._lock:
            self._holds.append((method.upper(), re.compile(path)))
            self._released.clear()

    def release(self) -> None:
        """End every :meth:`hold`; the requests held are dropped (their connections closed)."""
        with self._lock:
            self._holds.clear()
            self._released.set()

    def cut_watches(self) -> None:
        """Close every open watch stream abruptly (no terminating chunk)."""
        with self.store.cond:
            for stream in self._watches:
                stream.cut = True
            self.store.cond.notify_all()

    def inject_image_pull_failure(self, image: str) -> None:
        """Containers of ``image`` cannot be pulled: their pods stay Pending, the container
        waiting with ``ErrImagePull`` then ``ImagePullBackOff`` (needs ``run_jobs``)."""
        kubelet = self._kubelet()
        kubelet.unpullable.add(image)

    def clear_image_pull_failure(self, image: str) -> None:
        """``image`` can be pulled again: the pods waiting for it start."""
        kubelet = self._kubelet()
        kubelet.unpullable.discard(image)
        workloads = self.workloads
        assert workloads is not None
        with self.store.cond:
            pods = list(self.store.data.get("pods", {}))
        for ns, name in pods:
            workloads.wake(("pods", ns, name))

    def oom_kill(self, pod: str, namespace: str = "default", container: str | None = None) -> None:
        """Kill a running container as the kernel's OOM killer does: SIGKILL to its process
        group, then ``terminated`` with reason ``OOMKilled`` and exit code 137."""
        self._kubelet().oom_kill((namespace, pod), container)

    def _kubelet(self) -> Kubelet:
        if self.workloads is None:
            raise RuntimeError("the emulator runs no pods: start it with Emulator(run_jobs=True)")
        return self.workloads.kubelet

    # --- inspection -------------------------------------------------------------------------

    def objects(self, resource: str) -> list[Obj]:
        """Stored objects of ``resource`` (``crontasks.crontask.dev``, ``events``, ``leases.
        coordination.k8s.io``; a plural, singular or short name also works when unambiguous),
        sorted by namespace and name."""
        return self.store.snapshot(self._resource_key(resource))

    def _resource_key(self, resource: str) -> str:
        with self.store.cond:
            types = list(self.store.registry.types.values())
        if any(t.key == resource for t in types):
            return resource
        keys = {t.key for t in types if resource in (t.plural, t.singular, *t.short_names)}
        if len(keys) == 1:
            return keys.pop()
        return resource  # not (or no longer) served: whatever is left, usually nothing

    def pod_log(self, pod: str, namespace: str = "default", container: str | None = None) -> str:
        """The current log of a pod's container, as ``pods/log`` returns it."""
        rtype = self.store.resolve("", "v1", "pods")
        obj = self.store.get(rtype, namespace, pod)
        return self._pod_log(obj, LogOptions(container=container)).entries_text()

    def process_groups(self) -> list[int]:
        """Process group ids of the containers running now (empty without ``run_jobs``)."""
        return self.workloads.kubelet.process_groups() if self.workloads else []

    @property
    def resource_version(self) -> str:
        """The current global resourceVersion."""
        with self.store.cond:
            return str(self.store.rv)

    def open_watches(self, resource: str | None = None) -> int:
        """How many watch streams are open (optionally of one resource)."""
        key = self._resource_key(resource) if resource else None
        with self.store.cond:
            return sum(1 for w in self._watches if key is None or w.rtype == key)

    def wait_for_watches(self, count: int, resource: str | None = None, timeout: float = 5) -> None:
        """Block until at least ``count`` watches (of ``resource``) are open."""
        key = self._resource_key(resource) if resource else None

        def enough() -> bool:
            return sum(1 for w in self._watches if key is None or w.rtype == key) >= count

        with self.store.cond:
            if not self.store.cond.wait_for(enough, timeout):
                raise TimeoutError(f"fewer than {count} watches opened within {timeout}s")

    def create_crd(self, crd: Obj) -> Obj:
        """Register a CustomResourceDefinition directly (as ``kubectl apply`` would)."""
        rtype = self.store.resolve("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        return self.store.create(rtype, None, crd)

    def create(self, obj: Obj) -> Obj:
        """Create any object directly from its apiVersion/kind (test setup shortcut)."""
        group, _, version = obj["apiVersion"].rpartition("/")
        with self.store.cond:
            found = [
                t
                for t in self.store.registry.types.values()
                if t.group == group and t.version == version and t.kind == obj["kind"]
            ]
        if not found:
            raise ApiError(404, f"no resource serves {obj['apiVersion']} {obj['kind']}")
        rtype = found[0]
        namespace = (
            (obj.get("metadata", {}).get("namespace") or "default") if rtype.namespaced else None
        )
        return self.store.create(rtype, namespace, obj)

    # --- called by the HTTP handlers --------------------------------------------------------

    def _pod_log(self, pod: Obj, options: LogOptions) -> LogBuffer:
        """The log a ``pods/log`` request reads, or the 400 the real server answers."""
        if self.workloads is not None:
            return self.workloads.kubelet.log_of(pod, options)
        name = pod["metadata"]["name"]
        if not pod["spec"].get("nodeName"):
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        container = options.container or str(pod["spec"]["containers"][0].get("name"))
        raise errors.bad_request(
            f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating'
        )

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append((record.method, record.path))
            self.request_log.append(record)

    def _take_error(self, method: str, path: str) -> ApiError | None:
        with self._lock:
            outage = self._outage
            for n, (m, p) in enumerate(self._unserved):
                if m == method and p.search(path):
                    del self._unserved[n]
                    return ApiError(404, "the server could not find the requested resource")
        if outage is not None:
            status, delay = outage
            if delay and self._healed.wait(delay):
                return None  # healed (or stopping) while held
            if status is not None:
                return _status_error(status)
        with self._lock:
            found = next((n for n, (_, p) in enumerate(self._errors) if p.search(path)), None)
            if found is None:
                return None
            code, _ = self._errors.pop(found)
        return _status_error(code)

    def _held(self, method: str, path: str) -> bool:
        """Whether the request is one to hold (``hold``): then this returns only once released,
        and its handler drops it."""
        with self._lock:
            held = any(m == method and p.match(path) for m, p in self._holds)
        if held:
            self._released.wait()
        return held

    def _take_conflict(self) -> bool:
        with self._lock:
            if self._conflicts <= 0:
                return False
            self._conflicts -= 1
            return True

    def _connection_opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)

    def _connection_closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)

    def _watch_opened(self, stream: WatchStream) -> None:
        with self.store.cond:
            self._watches.add(stream)
            self.store.cond.notify_all()

    def _watch_closed(self, stream: WatchStream) -> None:
        with self.store.cond:
            self._watches.discard(stream)
            self.store.cond.notify_all()


def _status_error(code: int) -> ApiError:
    reason = _REASONS_5XX.get(code, "InternalError")
    body = status_body(code, reason, f"injected fault: {code} {reason}")
    return ApiError(code, body["message"], reason=reason)
