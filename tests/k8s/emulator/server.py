"""The HTTP front of the emulator: routing, content negotiation, watch streaming, faults."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from . import discovery, errors, openapi, podlogs
from .errors import ApiError, status_body
from .history import Expired
from .selectors import matcher
from .store import Obj
from .strategy import delete_options
from .table import TABLE_ACCEPT, to_table
from .types import ResourceType

if TYPE_CHECKING:
    from .emulator import Emulator


@dataclass
class RequestRecord:
    """One request as the emulator saw it (for tests that check what a client sent)."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    accept: str


@dataclass(eq=False)
class WatchStream:
    """An open watch; ``cut`` makes its handler drop the connection."""

    rtype: str
    cut: bool = False
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Target:
    group: str
    version: str
    rtype: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


class Server(ThreadingHTTPServer):
    daemon_threads = False  # stop() joins every handler thread
    block_on_close = True

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        super().__init__(("127.0.0.1", 0), Handler)


MAX_BODY = 3 * 1024 * 1024  # the real server's limit on a request body
_DRAIN_LIMIT = 16 * MAX_BODY  # beyond this, an oversized body is not read to its end
_LIVENESS = 0.2  # seconds between checks that a watching client is still there


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # http.server writes headers and body separately; with Nagle's algorithm on, the body of a
    # keep-alive response waits for the client's delayed ACK (about 40 ms). The real API server
    # sets TCP_NODELAY, and so does the emulator.
    disable_nagle_algorithm = True
    server: Server

    def setup(self) -> None:
        super().setup()
        self.server.emulator._connection_opened(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.emulator._connection_closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # --- plumbing ---------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        """The request body, at most ``MAX_BODY`` bytes: 413 beyond, as the real server, after
        reading (and dropping, up to a bound) the rest so that the client gets the answer."""
        too_large = ApiError(
            413, f"Request entity too large: limit is {MAX_BODY}", reason="RequestEntityTooLarge"
        )
        data, total = bytearray(), 0

        def take(size: int) -> None:
            nonlocal data, total
            while size > 0 and (piece := self.rfile.read(min(size, 65536))):
                size, total = size - len(piece), total + len(piece)
                if total <= MAX_BODY:
                    data += piece
                if total > _DRAIN_LIMIT:
                    self.close_connection = True
                    raise too_large

        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                take(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
        else:
            take(int(self.headers.get("Content-Length") or 0))
        if total > MAX_BODY:
            raise too_large
        return bytes(data)

    def _begin_stream(self, content_type: str) -> None:
        """Headers of a chunked response (a watch, a followed log)."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:  # asked for (Connection: close): said, as Go's server does
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, code: int, obj: Any) -> None:
        self._send(code, self._encode(obj))

    def _encode(self, obj: Any) -> bytes:
        body = json.dumps(obj).encode()
        # Emulator.raw_values: a value too deep for Python's own JSON (and the store's copies)
        # is stored as a placeholder string and served as the raw text it stands for.
        for placeholder, raw in self.server.emulator.raw_values.items():
            body = body.replace(json.dumps(placeholder).encode(), raw)
        return body

    def _dispatch(self, method: str) -> None:
        emulator = self.server.emulator
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        emulator._record(
            RequestRecord(
                method,
                url.path,
                params,
                self.headers.get("Content-Type", ""),
                self.headers.get("Accept", ""),
            )
        )
        try:
            raw = self._read_body()
            if emulator._held(method, url.path):  # never answered (``Emulator.hold``)
                self._abort()
                return
            injected = emulator._take_error(method, url.path)
            if injected is not None:
                raise injected
            result = self._route(method, url.path, params, raw)
            if result is not None:
                self._send_json(*result)
        except ApiError as e:
            self._send_json(e.code, e.status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            emulator.server_errors.append(traceback.format_exc())
            self._send_json(
                500, status_body(500, "InternalError", "emulator bug, see server_errors")
            )

    # --- routing ----------------------------------------------------------------------------

    def _route(
        self, method: str, path: str, params: dict[str, str], raw: bytes
    ) -> tuple[int, Any] | None:
        emulator = self.server.emulator
        store = emulator.store
        parts = [p for p in path.split("/") if p]
        if parts in (["healthz"], ["readyz"], ["livez"]):
            self._send(200, b"ok", "text/plain; charset=utf-8")
            return None
        if method == "GET" and parts == ["version"]:
            return 200, discovery.VERSION_INFO
        if method == "GET" and parts[:2] == ["openapi", "v3"]:
            with store.cond:
                return 200, openapi.serve(store.registry, parts[2:])
        if not parts or parts[0] not in ("api", "apis"):
            raise ApiError(404, "the server could not find the requested resource")
        if method == "GET" and parts == ["api"]:
            return 200, discovery.api_versions(f"127.0.0.1:{emulator.port}")
        with store.cond:
            if method == "GET" and parts == ["apis"]:
                return 200, discovery.api_group_list(store.registry)
            if method == "GET" and len(parts) == 2 and parts[0] == "apis":
                return 200, discovery.api_group(store.registry, parts[1])
            if parts[0] == "api":
                group, version, rest = "", parts[1], parts[2:]
            else:
                group, version, rest = parts[1], parts[2], parts[3:]
            if not rest and method == "GET":
                return 200, discovery.api_resource_list(store.registry, group, version)
        target = self._target(group, version, rest)
        body: Any = None
        if raw and "protobuf" in self.headers.get("Content-Type", ""):
            # kubectl's typed clients (kubectl create job) write built-ins as protobuf.
            raise ApiError(
                415,
                "the emulator decodes JSON bodies only, not application/vnd.kubernetes.protobuf",
                reason="UnsupportedMediaType",
            )
        if raw:
            try:
                body = json.loads(raw)
            except ValueError as e:
                raise errors.bad_request(f"the request body is not valid JSON: {e}") from e
        if "dryRun" in params:
            raise errors.bad_request("the emulator does not implement dryRun")
        return self._resource(method, target, params, body)

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        store = self.server.emulator.store
        namespace: str | None = None
        if (
            rest
            and rest[0] == "namespaces"
            and len(rest) == 3
            and rest[2] in ("status", "finalize")
        ):
            pass  # a namespace's own subresource
        elif rest and rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise ApiError(404, "the server could not find the requested resource")
        rtype = store.resolve(group, version, rest[0])
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        not_found = ApiError(404, "the server could not find the requested resource")
        served = (*rtype.subresources, *(("status",) if rtype.status_subresource else ()))
        if sub is not None and sub not in served:
            raise not_found
        if rtype.namespaced and name is not None and namespace is None:
            raise not_found
        if not rtype.namespaced and namespace is not None:
            raise not_found
        return Target(group, version, rtype, namespace, name, sub)

    def _resource(
        self, method: str, t: Target, params: dict[str, str], body: Any
    ) -> tuple[int, Any] | None:
        emulator = self.server.emulator
        store = emulator.store
        rtype = t.rtype
        if t.subresource in rtype.subresources:
            if method != "GET":
                raise ApiError(405, f"{method} is not supported", reason="MethodNotAllowed")
            self._log(t, params)
            return None
        match = matcher(params.get("labelSelector"), params.get("fieldSelector"))
        if method == "GET" and _truthy(params.get("watch")):
            if t.name is not None:  # the deprecated watch of one object by its path
                by_name = matcher(None, f"metadata.name={t.name}")
                both = match
                match = lambda o: by_name(o) and both(o)  # noqa: E731
            self._watch(rtype, t.namespace, params, match)
            return None
        want_table = bool(TABLE_ACCEPT.search(self.headers.get("Accept", "")))
        if method == "GET" and t.name is not None:
            obj = store.get(rtype, t.namespace, t.name)
            if want_table:
                return 200, self._table(rtype, [obj], obj["metadata"]["resourceVersion"], params)
            return 200, obj
        if method == "GET":
            listed = store.list_objects(
                rtype, t.namespace, match, int(params.get("limit") or 0), params.get("continue", "")
            )
            if want_table:
                table = self._table(rtype, listed.items, listed.resource_version, params)
                if listed.continue_token:
                    table["metadata"]["continue"] = listed.continue_token
                    table["metadata"]["remainingItemCount"] = listed.remaining
                return 200, table
            meta: Obj = {"resourceVersion": listed.resource_version}
            if listed.continue_token:
                meta["continue"] = listed.continue_token
                meta["remainingItemCount"] = listed.remaining
            items = listed.items
            if rtype.builtin:  # typed lists of built-ins carry no kind/apiVersion per item
                items = [
                    {k: v for k, v in i.items() if k not in ("kind", "apiVersion")} for i in items
                ]
            return 200, {
                "apiVersion": rtype.api_version,
                "kind": rtype.list_kind,
                "metadata": meta,
                "items": items,
            }
        if method == "POST" and t.name is None:
            return 201, store.create(rtype, t.namespace, body)
        if method == "DELETE" and t.name is None:
            return 200, store.delete_collection(rtype, t.namespace, match)
        if t.name is None:
            raise ApiError(
                405, f"{method} is not supported on a collection", reason="MethodNotAllowed"
            )
        if method in ("PUT", "PATCH") and emulator._take_conflict():
            raise errors.conflict(rtype.plural, rtype.group, t.name)
        if method == "PUT":
            obj, created = store.update(rtype, t.namespace, t.name, body, t.subresource)
            return (201 if created else 200), obj
        if method == "PATCH":
            content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if body is None:
                raise errors.bad_request("the patch body is empty")
            return 200, store.patch(rtype, t.namespace, t.name, content_type, body, t.subresource)
        if method == "DELETE":
            return 200, store.delete(rtype, t.namespace, t.name, delete_options(body, params))
        raise ApiError(405, f"{method} is not supported", reason="MethodNotAllowed")

    def _table(self, rtype: ResourceType, items: list[Obj], rv: str, params: dict[str, str]) -> Obj:
        return to_table(
            rtype,
            items,
            rv,
            include_object=params.get("includeObject") or "Metadata",
            no_headers=_truthy(params.get("noHeaders")),
        )

    # --- pods/log -----------------------------------------------------------------------------

    def _log(self, t: Target, params: dict[str, str]) -> None:
        emulator = self.server.emulator
        assert t.name is not None
        pod = emulator.store.get(t.rtype, t.namespace, t.name)
        options = podlogs.parse(params)
        log = emulator._pod_log(pod, options)
        if not options.follow:
            self._send(200, podlogs.render(log, options), "text/plain")
            return
        self._begin_stream("text/plain")
        for chunk in podlogs.stream(log, options, emulator.stopped):
            self._chunk(chunk)
        self._chunk(b"")

    # --- watch ------------------------------------------------------------------------------

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _event(self, kind: str, obj: Obj) -> None:
        self._chunk(self._encode({"type": kind, "object": obj}) + b"\n")

    def _watch(
        self, rtype: ResourceType, namespace: str | None, params: dict[str, str], match: Any
    ) -> None:
        emulator = self.server.emulator
        store = emulator.store
        bookmarks = _truthy(params.get("allowWatchBookmarks"))
        given = params.get("timeoutSeconds") if emulator.watch_timeouts else None
        timeout = float(given) if given else None
        rv_param = params.get("resourceVersion", "")
        expired: ApiError | None = None
        initial: list[Obj] = []
        with store.cond:
            if rv_param in ("", "0"):
                initial = store.list_objects(rtype, namespace, match).items
                pos = store.rv
            else:
                try:
                    pos = int(rv_param)
                except ValueError as e:
                    raise errors.bad_request(f"invalid resource version: {rv_param!r}") from e
                try:
                    store.check_watch_rv(pos)
                except Expired as e:
                    expired = e
            stream = WatchStream(rtype.key)
            emulator._watch_opened(stream)
        try:
            self._begin_stream("application/json")
            if expired is not None:  # as the real server: HTTP 200, then one ERROR event
                self._event("ERROR", expired.status())
                self._chunk(b"")
                return
            for obj in initial:
                self._event("ADDED", obj)
            self._stream(rtype, namespace, match, pos, stream, bookmarks, timeout)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            emulator._watch_closed(stream)

    def _stream(
        self,
        rtype: ResourceType,
        namespace: str | None,
        match: Any,
        pos: int,
        stream: WatchStream,
        bookmarks: bool,
        timeout: float | None,
    ) -> None:
        emulator = self.server.emulator
        store = emulator.store
        start = time.monotonic()
        deadline = start + timeout if timeout is not None else None
        interval = emulator.bookmark_interval
        next_bookmark = start + interval if bookmarks else None
        while True:
            batch: list[Obj] = []
            kinds: list[str] = []
            bookmark: str | None = None
            ended = gone = False
            with store.cond:
                while True:
                    if stream.cut or emulator._stopping:
                        break
                    events = store.events_after(rtype.key, pos)
                    if events:
                        pos = events[-1].rv
                        for e in events:
                            if (
                                namespace is not None
                                and e.obj["metadata"].get("namespace") != namespace
                            ):
                                continue
                            seen = e.for_watcher(match)
                            if seen is not None:
                                kinds.append(seen[0])
                                batch.append(store.present(rtype, seen[1]))
                        if batch:
                            break
                        continue
                    now = time.monotonic()
                    if deadline is not None and now >= deadline:
                        ended = True
                        break
                    if next_bookmark is not None and now >= next_bookmark:
                        pos = max(pos, store.rv)
                        bookmark = str(pos)
                        next_bookmark = now + interval
                        break
                    if self._client_gone():
                        gone = True
                        break
                    wakes = [t for t in (deadline, next_bookmark) if t is not None]
                    wait = min(min(wakes) - now, _LIVENESS) if wakes else _LIVENESS
                    store.cond.wait(wait)
            if gone:
                self.close_connection = True
                return
            if stream.cut or emulator._stopping:
                emulator._watch_closed(stream)  # before the client can see the cut
                self._abort()
                return
            for kind, obj in zip(kinds, batch, strict=True):
                self._event(kind, obj)
            if bookmark is not None:
                self._event(
                    "BOOKMARK",
                    {
                        "kind": rtype.kind,
                        "apiVersion": rtype.api_version,
                        "metadata": {"resourceVersion": bookmark},
                    },
                )
            if ended:
                self._chunk(b"")  # the terminating chunk: a clean end of stream
                return

    def _client_gone(self) -> bool:
        """Whether the client closed its end (a stopped watch), so the stream can be dropped."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _abort(self) -> None:
        """Drop the connection mid-stream, with no terminating chunk."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
