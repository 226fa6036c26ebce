"""The API's listening socket: connections it accepts send small responses at once."""

from __future__ import annotations

import socket

from reconciler.cli.daemon import listening_socket


def test_accepted_connections_do_not_wait_for_delayed_acks() -> None:
    # Without TCP_NODELAY a keep-alive client (Prometheus) waits ~40 ms on every small
    # response; asyncio would not set it on create_server's sockets (their proto is 0).
    with listening_socket("127.0.0.1", 0) as server:
        client = socket.create_connection(server.getsockname()[:2], timeout=5)
        accepted, _ = server.accept()
        with client, accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
