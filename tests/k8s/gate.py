"""A TCP gate in front of the emulator, to make the API server unreachable and bring it back:
closed, its port refuses connections and those open are cut (as when the API server's process
is gone); opened again, on the same port, with the emulator's store as it was."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

from kubernetes import client

from tests.helpers import free_port, pump
from tests.k8s.emulator import Emulator


class Gate:
    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        self._acceptor: threading.Thread | None = None
        self.open()

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.02)  # the acceptor sees close() between its waits
        self._closed.clear()
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._acceptor.start()

    def close(self) -> None:
        """Refuse connections from now on, and cut those open (both ends)."""
        self._closed.set()
        if self._acceptor is not None:
            self._acceptor.join()  # it closes the listener
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
            threads, self._threads = self._threads, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join()
        for sock in sockets:
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while not self._closed.is_set():
                try:
                    near, _ = listener.accept()
                except TimeoutError:
                    continue
                near.settimeout(None)
                far = socket.create_connection(("127.0.0.1", self.target))
                with self._lock:
                    self._sockets |= {near, far}
                    for source, sink in ((near, far), (far, near)):
                        piping = threading.Thread(target=pump, args=(source, sink), daemon=True)
                        self._threads.append(piping)
                        piping.start()


@contextlib.contextmanager
def gated(emulator: Emulator) -> Iterator[tuple[Gate, Any]]:
    """A gate in front of ``emulator``, and an API client that reaches it through the gate;
    both closed afterwards."""
    gate = Gate(emulator.port)
    configuration = client.Configuration()
    configuration.host = gate.url
    api = client.ApiClient(configuration)
    try:
        yield gate, api
    finally:
        api.close()  # type: ignore[no-untyped-call]
        gate.close()
