"""A Replace slot waiting for another replica's run to stop gives up when crontask is asked to
stop: waiting on held the shutdown up to the handover's patience (60 s), past any grace and a
second signal, and then still claimed a run that was at once interrupted."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from reconciler.core.runs import run_id
from reconciler.store import MemoryRunStore
from tests.controller.test_replica_policies import KEY, T0, replica, until
from tests.helpers import definition


def test_a_replace_waiting_for_another_replica_gives_up_at_shutdown() -> None:
    store = MemoryRunStore()
    job = definition("job", concurrencyPolicy="Replace")

    async def main() -> None:
        a = replica(store, "a:1:x", T0 + timedelta(seconds=1))
        b = replica(store, "b:2:y", T0 + timedelta(seconds=2))
        a.d.handover.patience = 600.0  # type: ignore[union-attr]  # longer than the test runs
        b.d.fire(job, T0)  # b's run, whose command does not stop when asked
        await until(lambda: len(b.action.running()) == 1)
        a.d.fire(job, T0 + timedelta(seconds=1))  # Replace: asks b to stop, and waits
        await until(lambda: bool(store.stop_requests("b:2:y")))  # asked of b
        # The whole shutdown within a bound far below the patience: it does not wait it out.
        await asyncio.wait_for(a.d.shutdown(0.1), 30)
        # a's slot was neither claimed nor recorded: the task's next owner catches it up.
        assert store.get(run_id(KEY, T0 + timedelta(seconds=1))) is None
        assert a.action.attempts == []
        for attempt in b.action.attempts:
            attempt.finish()
        await b.d.shutdown(0)

    asyncio.run(main())
