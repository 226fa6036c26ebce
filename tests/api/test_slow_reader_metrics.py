"""Clients that read ``/metrics`` slowly (or not at all) cannot keep another host's scrape out
for good: once every place is held, a scrape takes the place of an answer to another address
older than ``CUT_SECONDS``, whose connection is dropped. One younger is not cut (a 503 at once:
``test_metrics_bounded.py``), nor one to the scrape's own address. Real uvicorn with crontask's
connection guard, real sockets from two loopback addresses, the real app."""

from __future__ import annotations

import contextlib
import http.client
import logging
import time
from collections.abc import Iterator

import pytest

from reconciler.api import routes_metrics
from tests.api.test_metrics_bounded import BODY, Served, hold_every_place, serve
from tests.helpers import wait_for

CUT_SECONDS = 0.5  # 10 s in the daemon


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.setattr(routes_metrics, "CUT_SECONDS", CUT_SECONDS, raising=False)
    with serve() as served:
        yield served


def scrape_from(served: Served, address: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(
        "127.0.0.1", served.port, timeout=10, source_address=(address, 0)
    )
    try:
        conn.request("GET", "/metrics", headers={"Accept-Encoding": "identity"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_slow_readers_holding_every_place_give_one_up_to_another_hosts_scrape(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="crontask.api")
    with contextlib.ExitStack() as stack:
        held = hold_every_place(served, stack)  # from 127.0.0.1, each answer begun by now
        since = time.monotonic()
        wait_for("the held answers to be old", lambda: time.monotonic() - since > CUT_SECONDS)
        # Their own address cannot cut them: asking again and again would keep them all young.
        assert scrape_from(served, "127.0.0.1")[0] == 503
        assert scrape_from(served, "127.0.0.2") == (200, BODY)
        # One place was wanted: one answer was cut, with its connection; the others go on.
        kept = len(held) - 1
        wait_for("the cut connection to go", lambda: len(served.connections()) == kept or None)
        assert served.paused() == kept
        said = [r for r in caplog.records if r.getMessage() == getattr(routes_metrics, "CUT", "")]
        assert [r.fields["cut"] for r in said] == [1]  # type: ignore[attr-defined]
