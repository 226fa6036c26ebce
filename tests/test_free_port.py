"""The test suite's port picker: ports of this worker's block only, outside the kernel's
ephemeral range, none handed twice in a row, a port in use skipped."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests import helpers


def test_ports_are_of_this_workers_block_and_not_repeated() -> None:
    block = helpers.port_block()
    ports = [helpers.free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(port in block for port in ports)


def test_the_blocks_of_a_run_do_not_overlap(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: set[int] = set()
    for workers in (1, 2, 3, 24, 64):
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(workers))
        blocks = []
        for index in range(workers):
            monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{index}")
            blocks.append(set(helpers.port_block()))
        assert sum(len(b) for b in blocks) == len(set().union(*blocks))
        seen |= set().union(*blocks)
    assert min(seen) >= helpers.PORT_BASE
    assert max(seen) < helpers.PORT_BASE + helpers.PORT_SPAN


def test_the_span_is_outside_the_ephemeral_range() -> None:
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    if low < helpers.PORT_BASE + helpers.PORT_SPAN and high >= helpers.PORT_BASE:
        pytest.skip(f"this host's ephemeral ports ({low}-{high}) overlap the span")
    assert not low <= helpers.free_port() <= high


def test_a_port_in_use_is_skipped() -> None:
    block = helpers.port_block()
    first = helpers.free_port()
    following = first + 1 if first + 1 in block else block.start
    with socket.create_server(("127.0.0.1", following)):
        assert helpers.free_port() != following
