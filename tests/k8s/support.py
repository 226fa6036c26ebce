"""Helpers shared by the emulator's contract tests."""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from tests.k8s.emulator import Emulator

GROUP, VERSION, PLURAL, KIND = "crontask.dev", "v1alpha1", "crontasks", "CronTask"
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def crontask(
    name: str, namespace: str = "default", labels: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"schedule": "*/5 * * * *"}
    body.update(spec)
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": meta, "spec": body}


def http_call(
    emulator: Emulator,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    text: bool = False,
) -> tuple[int, dict[str, str], Any]:
    """One raw request; returns (status, headers, decoded JSON body, or the text when ``text``
    or not JSON)."""
    url = urlsplit(emulator.url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=data, headers=all_headers)
        resp = conn.getresponse()
        raw = resp.read()
        resp_headers = {k.lower(): v for k, v in resp.getheaders()}
        if text:
            return resp.status, resp_headers, raw.decode()
        try:
            return resp.status, resp_headers, json.loads(raw)
        except ValueError:  # empty, text, or a watch's newline-delimited events
            return resp.status, resp_headers, raw.decode()
    finally:
        conn.close()


def new_watch() -> Any:
    """``kubernetes.watch.Watch()`` (untyped in the client)."""
    return watch.Watch()  # type: ignore[no-untyped-call]


def error_body(exc: ApiException) -> dict[str, Any]:
    """The ``Status`` body of a failed call."""
    body = json.loads(exc.body or "{}")
    assert isinstance(body, dict)
    return body


_END = object()


class WatchCollector:
    """Runs ``kubernetes.watch.Watch().stream(func, ...)`` in a thread and queues its events,
    so a test can write while the watch is open and then wait for exactly what it expects."""

    def __init__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.watch = new_watch()
        self._func, self._args, self._kwargs = func, args, kwargs
        self._queue: queue.Queue[Any] = queue.Queue()
        self.error: BaseException | None = None
        self.finished = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> WatchCollector:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            for event in self.watch.stream(self._func, *self._args, **self._kwargs):
                self._queue.put(event)
        except BaseException as e:  # handed to the test thread
            self.error = e
        finally:
            self.finished.set()
            self._queue.put(_END)

    def next(self, timeout: float = 5.0) -> dict[str, Any]:
        item = self._queue.get(timeout=timeout)
        if item is _END:
            raise AssertionError(f"the watch ended (error: {self.error!r})")
        assert isinstance(item, dict)
        return item

    def take(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        return [self.next(max(0.0, deadline - time.monotonic())) for _ in range(count)]

    def take_until(
        self, done: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Events up to and including the first for which ``done`` is true."""
        deadline = time.monotonic() + timeout
        events = [self.next(timeout)]
        while not done(events[-1]):
            events.append(self.next(max(0.0, deadline - time.monotonic())))
        return events

    def stop(self) -> None:
        """Stop the client's watch. Its socket is shut down only once the client holds the
        response (after the first event); before that the stream ends at its next event."""
        self.watch.stop()
        self._thread.join(timeout=5)

    def join(self, timeout: float = 5.0) -> None:
        assert self.finished.wait(timeout), "the watch did not end"
        self._thread.join(timeout)
