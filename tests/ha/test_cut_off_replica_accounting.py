"""A real ``crontask run --ha`` replica cut off from PostgreSQL past its lease, then back: how
the slots of the gap are recorded. Its connections go through a TCP proxy that the test kills
(connections reset and refused), then starts again.

Cut off, the replica starts none of its slots (their claims cannot be checked), and keeps a
``Superseded`` skip of each for the store; the other replica takes its tasks once its lease has
run out, records the gap as one ``Superseded`` and runs the next slots. Back, the replica takes
its tasks again. Neither its kept skips nor its catch-up may say that a slot the other replica
ran did not run, and none may be lost. (Its kept skips are written once the store answers,
though the other replica's gap counted their slots too, not seeing them: a slot may be counted
twice, a known limitation (``controller.lapse``). A lone replica behind a store that goes
silent, SIGSTOP of the proxy, is tested on the in-memory twins, where the hung claim's landing
can be timed: ``tests/controller/test_cluster_lapse_recount.py``.)
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from reconciler.core.runs import RunRecord, RunStatus
from tests.ha.conftest import Cluster, Replica
from tests.ha.test_replicas import members, write_tasks
from tests.helpers import free_port, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

_PROXY = """
import asyncio, sys

async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()

async def handle(reader, writer):
    try:
        up_reader, up_writer = await asyncio.open_connection(sys.argv[2], int(sys.argv[3]))
    except OSError:
        writer.close()
        return
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    print("listening", flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""
# A lease short enough for a test, a renew deadline long enough that several slots are not
# started (each claim waits 2 s for its answer: ``lane.ANSWER_WAIT``) before the fence.
_TIMING = ("--renew-interval", "1s", "--renew-deadline", "6s", "--lease-duration", "8s")
_COVERED = re.compile(r"(?:more than )?(\d+) slots? after (\S+) and before (\S+) ")


class Proxy:
    """A TCP proxy (a process of its own) to the cluster's PostgreSQL; ``url``: through it."""

    def __init__(self, db: str, script: Path) -> None:
        url = urlsplit(db)
        self.port = free_port()
        self.target = [url.hostname or "127.0.0.1", str(url.port or 5432)]
        self.script = script
        script.write_text(_PROXY)
        netloc = url.netloc.rsplit("@", 1)[0] + f"@127.0.0.1:{self.port}"
        self.url = urlunsplit(url._replace(netloc=netloc))
        self.proc = self.start()

    def start(self) -> subprocess.Popen[bytes]:
        argv = [sys.executable, str(self.script), str(self.port), *self.target]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == b"listening\n"
        return self.proc

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture
def proxy(cluster: Cluster, tmp_path: Path) -> Iterator[Proxy]:
    made = Proxy(cluster.db, tmp_path / "proxy.py")
    try:
        yield made
    finally:
        made.close()


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _covered(record: RunRecord) -> list[datetime]:
    """The (per-second) slots a ``Superseded`` record says did not run."""
    found = _COVERED.match(record.message or "")
    assert found is not None, record.message
    after, before = _at(found.group(2)), _at(found.group(3))
    first = after.replace(microsecond=0) + timedelta(seconds=1)
    return [first + timedelta(seconds=i) for i in range(int((before - first).total_seconds()))]


def _runs_after(cluster: Cluster, owner: str, tasks: set[str], since: datetime) -> int:
    return sum(
        1
        for r in cluster.runs()
        if r.task in tasks and r.owner and r.owner.startswith(owner) and r.scheduled_at > since
        if r.status is RunStatus.SUCCEEDED
    )


@pytest.mark.slow  # half a minute: a lease runs out, and the replica comes back
def test_slots_of_a_replica_cut_off_past_its_lease_are_recorded_once_and_truly(
    cluster: Cluster, tmp_path: Path, proxy: Proxy
) -> None:
    write_tasks(cluster, tmp_path / "out", count=8, concurrencyPolicy="Allow")
    a = cluster.add("a", *_TIMING)
    b = Replica("b", cluster.workdir, cluster.tasks, proxy.url, list(_TIMING))
    cluster.replicas.append(b)
    b.start()
    members(a, 2)
    members(b, 2)
    start = datetime.now(UTC)
    wait_for("b runs its tasks", lambda: _runs_after(cluster, b.id_prefix, _all(), start) >= 3, 20)
    b_tasks = {r.task for r in cluster.runs() if r.owner and r.owner.startswith(b.id_prefix)}
    cut = datetime.now(UTC)
    proxy.close()  # b's store refuses: claims, skips, renewals
    try:
        a.wait_log('msg="replicas changed" members=1 ', timeout=30)  # b's lease ran out
        taken = datetime.now(UTC)
        wait_for("a runs b's tasks", lambda: _runs_after(cluster, a.id_prefix, b_tasks, taken) >= 6)
    finally:
        proxy.start()
    b.wait_log("membership had lapsed", timeout=30)
    back = datetime.now(UTC)
    wait_for(
        "b runs its tasks again", lambda: _runs_after(cluster, b.id_prefix, b_tasks, back) >= 6
    )
    for replica in (a, b):
        replica.stop()

    records = [r for r in cluster.runs() if r.task in b_tasks and r.scheduled_at > cut]
    ran = {(r.task, r.scheduled_at) for r in records if r.status is RunStatus.SUCCEEDED}
    told = Counter(
        (r.task, slot)
        for r in records
        if r.reason == "Superseded" and r.message
        for slot in _covered(r)
    )
    said = [(r.task, r.owner, r.message) for r in records if r.reason == "Superseded"]
    assert not ran & set(told), said  # ran, and recorded as not run


def _all() -> set[str]:
    return {f"default/tick-{i:02d}" for i in range(8)}
