"""Real replicas say which crontask version each runs: ``/api/v1/members`` and ``crontask
members`` of either replica list both, with this crontask's version."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import httpx
import pytest

import reconciler
from tests.ha.conftest import Cluster

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]


@pytest.mark.slow
def test_each_replica_is_listed_with_its_version(cluster: Cluster) -> None:
    a, b = cluster.add("a"), cluster.add("b")
    for replica in (a, b):
        replica.wait_log('msg="replicas changed" members=2 ', timeout=40)
    items: list[dict[str, Any]] = httpx.get(f"{a.server}/api/v1/members").json()["items"]
    assert [m["version"] for m in items] == [reconciler.__version__] * 2
    out = subprocess.run(
        [sys.executable, "-m", "reconciler", "members", "--server", b.server],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={**os.environ},
    ).stdout
    header, *rows = out.splitlines()
    assert header.split()[-1] == "VERSION"
    assert [row.split()[-1] for row in rows] == [reconciler.__version__] * 2
