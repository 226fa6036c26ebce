"""``crontask members`` during a run-store outage: a real ``crontask run --ha`` replica whose
PostgreSQL goes away (its TCP proxy, ``test_cut_off_replica_accounting.Proxy``, is stopped:
connections reset and refused) past its renew deadline, then comes back.

Fenced (``crontask_replica_fenced 1``), the replica still answers the list its last renewal that
worked read: the answer says so (``fenced``, ``listedAt`` from before the outage) and so does the
CLI, in a line of its own; renewed again, both say the list is current.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ha.conftest import Cluster, Replica
from tests.ha.test_cut_off_replica_accounting import Proxy
from tests.ha.test_replicas import write_tasks
from tests.helpers import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

_TIMING = ("--renew-interval", "1s", "--renew-deadline", "3s", "--lease-duration", "5s")
_FENCED = "this replica has not renewed its membership since "


def _answer(replica: Replica) -> dict[str, Any]:
    response = httpx.get(f"{replica.server}/api/v1/members")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _cli(replica: Replica, *extra: str) -> str:
    argv = [sys.executable, "-m", "reconciler", "members", "--server", replica.server, *extra]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _fenced_metric(replica: Replica) -> str:
    scraped = httpx.get(f"{replica.server}/metrics").text
    (line,) = [x for x in scraped.splitlines() if x.startswith("crontask_replica_fenced ")]
    return line


@pytest.mark.slow  # about 15 s: a replica joins, is fenced behind its store, renews again
def test_members_says_a_fenced_replicas_list_is_as_of_its_last_renewal(
    cluster: Cluster, tmp_path: Path
) -> None:
    write_tasks(cluster, tmp_path / "out", count=2)
    proxy = Proxy(cluster.db, tmp_path / "proxy.py")
    try:
        replica = Replica("a", cluster.workdir, cluster.tasks, proxy.url, list(_TIMING))
        cluster.replicas.append(replica)
        replica.start()
        wait_for("a listed", lambda: _answer(replica)["total"] == 1, 30)
        healthy = _answer(replica)
        assert healthy["fenced"] is False
        assert _at(healthy["listedAt"]) <= datetime.now(UTC)
        assert _FENCED not in _cli(replica)

        cut = datetime.now(UTC)
        proxy.close()
        wait_for("a fenced", lambda: _answer(replica)["fenced"], 30)
        fenced = _answer(replica)
        listed = _at(fenced["listedAt"])
        # The list its last renewal read, from before the store went: not a current one.
        assert _at(healthy["listedAt"]) <= listed < cut
        assert [(m["me"], fenced["total"]) for m in fenced["items"]] == [(True, 1)]
        assert _fenced_metric(replica) == "crontask_replica_fenced 1"
        since = listed.strftime("%Y-%m-%d %H:%M:%S%z")
        line = f"{_FENCED}{since}: the list is as of then; it starts no runs"
        assert line in _cli(replica).splitlines()
        told = json.loads(_cli(replica, "--json"))
        assert (told["fenced"], told["listedAt"]) == (True, fenced["listedAt"])

        proxy.start()
        wait_for("a renewed again", lambda: not _answer(replica)["fenced"], 30)
        assert _at(_answer(replica)["listedAt"]) > cut
        assert _FENCED not in _cli(replica)
    finally:
        proxy.close()
