"""What the record of a run a replica left says, as another replica marks it ``interrupted``.

Only what is known: its replica stopped renewing its membership until its lease ran out (it
died, was stopped, or was cut off: a process paused by SIGSTOP may still be running its
command), the outcome is unknown, and nobody told of it. Not that the process exited. (The
note that nobody told of it, ``core.runs.UNTOLD``, is a marker records are found by: it keeps
the words older crontasks wrote.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

from reconciler.core.runs import PROCESS_DIED, RunStatus, untold
from tests.controller.test_cluster import World, settle
from tests.controller.test_cluster_sweep import running_run


def test_the_record_says_the_replica_stopped_renewing_not_that_it_exited(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)

    async def main() -> str:
        a, b = world.replicas("a", "b")
        await settle([a, b])
        run = running_run(world, sorted(b.owned())[0], b.id)
        for _ in range(9):  # b renews no more; its record expires
            world.clocks.advance(2)
            await a.step()
        return run

    record = world.store.get(asyncio.run(main()))
    assert record is not None
    assert (record.status, record.reason) == (RunStatus.INTERRUPTED, PROCESS_DIED)
    message = record.message or ""
    assert "b:1:b" in message
    assert "stopped renewing its membership" in message
    assert "outcome is unknown" in message
    assert "exited" not in message
    assert untold(record)  # a crontask that tells of crashed runs may still take it over
