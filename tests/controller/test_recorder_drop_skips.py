"""``Recorder.drop_skips``: skips kept for a store that did not answer are forgotten (the slots
are counted by another replica's catch-up after a lapse, ``controller.lapse``), and so is the
write of one still queued for the store's threads, which would otherwise land once they are
free (one a thread has taken, or the buffer's write has, lands). Other records stay."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

from reconciler.controller.recorder import Recorder
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import MemoryRunStore

AT = datetime(2026, 11, 30, 12, tzinfo=UTC)


def skip(task: str) -> RunRecord:
    return RunRecord(
        run_id(task, AT), task, AT, Trigger.SCHEDULE, RunStatus.SKIPPED, reason="Superseded"
    )


class Held(MemoryRunStore):
    """``hold`` takes a store thread until ``gate`` opens (a store gone silent)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def hold(self) -> None:
        self.entered.set()
        assert self.gate.wait(10)


def test_a_dropped_skip_is_not_written_by_the_buffer_nor_by_its_queued_call() -> None:
    store = Held()
    kept, dropped = skip("default/kept"), skip("default/dropped")

    async def main() -> None:
        recorder = Recorder(store, io_threads=1, answer_wait=0.05, retry_initial=0.01)
        held = asyncio.ensure_future(recorder.call(store.hold))  # the one thread waits in it
        assert await asyncio.get_running_loop().run_in_executor(None, store.entered.wait, 5)
        # Unanswered, each is kept, its call queued still; the buffer's write of the first
        # is on its way (queued too) when the second is kept.
        assert await recorder.add(kept) is False
        assert await recorder.add(dropped) is False
        assert recorder.pending == 2
        assert recorder.drop_skips(lambda record: record.task == "default/dropped") == [dropped]
        assert recorder.pending == 1
        store.gate.set()
        await held
        assert await recorder.flush(5)
        await recorder.close(1)

    asyncio.run(main())
    assert store.get(kept.id) is not None
    assert store.get(dropped.id) is None
