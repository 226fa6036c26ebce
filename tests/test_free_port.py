"""The test suite's port picker: ports outside the kernel's ephemeral range, none handed twice
in a row, a port in use skipped."""

from __future__ import annotations

import socket
from pathlib import Path

from tests import helpers


def _ephemeral_range() -> tuple[int, int]:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return int(low), int(high)


def test_ports_are_outside_the_ephemeral_range_and_not_repeated() -> None:
    low, high = _ephemeral_range()
    ports = [helpers.free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(not low <= port <= high for port in ports)


def test_a_port_in_use_is_skipped() -> None:
    first = helpers.free_port()
    following = first + 1 if (first + 1 - helpers._PORT_BASE) % helpers._PORT_BLOCK else None
    if following is None:  # the block wraps here: take the next pair
        first = helpers.free_port()
        following = first + 1
    with socket.create_server(("127.0.0.1", following)):
        assert helpers.free_port() != following
