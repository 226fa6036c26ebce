"""What a long run store outage costs is said in the log once, with counts, never silently nor
once a record.

The records waiting were already bounded (10 000; their outputs 32 Mi characters together,
past which a record keeps the end of its output), but the cut outputs were said nowhere, and
a buffer kept full logged an error for each record dropped: 300 runs a second through an
outage logged 18 616 such lines in a minute, with ``crontask run`` itself measured at 250 MB.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import tracemalloc

import pytest

from reconciler.controller.lost import LOST_LISTED
from reconciler.controller.recorder import Recorder
from reconciler.controller.waiting import CUT_TO
from reconciler.core.runs import RunStatus
from tests.controller.test_recorder import OutageStore, record

OUTPUT = "x" * 79 + "\n"
BIG = OUTPUT * 820  # 64 000 characters: near the kept output's 64 KiB
CUT = "run store unavailable; outputs of records waiting cut to their last characters"
FULL = "run record buffer full; oldest record dropped"
STILL_FULL = "run record buffer still full; more records dropped, counted, not named"
BACK = "run store back; pending records written"
UNENDED = "run store outage not over at the stop"


def said(caplog: pytest.LogCaptureFixture, message: str) -> list[dict[str, object]]:
    return [r.__dict__["fields"] for r in caplog.records if r.getMessage() == message]


def test_outputs_cut_for_room_are_said_once_an_outage_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = OutageStore()
    budget = 3 * len(BIG)
    held: list[int] = []

    async def outage(recorder: Recorder, first: int) -> None:
        store.down = True
        for minute in range(first, first + 40):
            # Each run's own output, as a real run's is: one string shared by all the records
            # would cost nothing to hold, cut or not, and the bound below would test nothing.
            own = f"{minute:05d}" + BIG[5:]
            await recorder.save(dataclasses.replace(record(minute, RunStatus.FAILED), output=own))
        held.append(tracemalloc.get_traced_memory()[0])
        store.down = False
        assert await recorder.flush(5)

    async def main() -> None:
        recorder = Recorder(store, output_budget=budget, retry_initial=0.01)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            await outage(recorder, 0)
            await outage(recorder, 100)
        finally:
            tracemalloc.stop()
        await recorder.close(1)
        # The bytes the 40 records waiting held: their outputs within the budget, the rest
        # cut (a record's own fields and the store's twin, which keeps what it was given, are
        # small beside 64 000 characters each: 40 whole outputs would be 2.5 MB).
        assert held[0] - before < budget + 37 * (2 * CUT_TO + 2048)

    with caplog.at_level(logging.INFO, logger="crontask.recorder"):
        asyncio.run(main())
    # Once an outage: each of the two says it, with the budget, and counts the rest.
    cut = said(caplog, CUT)
    assert len(cut) == 2
    assert cut[0]["output_budget"] == budget
    assert cut[0]["kept_characters"] == CUT_TO
    assert [fields["outputs_cut"] for fields in said(caplog, BACK)] == [37, 37]
    assert all(fields["dropped"] == 0 for fields in said(caplog, BACK))
    # No record was lost for its output: every run's outcome arrived.
    kept = [store.get(record(m).id) for m in [*range(40), *range(100, 140)]]
    assert all(r is not None and r.status is RunStatus.FAILED for r in kept)


def test_records_dropped_for_room_are_named_up_to_a_limit_then_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = OutageStore()
    many = LOST_LISTED + 30

    async def main() -> None:
        recorder = Recorder(store, capacity=3, retry_initial=0.01)
        store.down = True
        for minute in range(3 + many):
            await recorder.save(record(minute, RunStatus.SUCCEEDED))
        assert (recorder.pending, recorder.dropped) == (3, many)
        store.down = False
        assert await recorder.flush(5)
        await recorder.close(1)

    with caplog.at_level(logging.INFO, logger="crontask.recorder"):
        asyncio.run(main())
    named = said(caplog, FULL)
    assert len(named) == LOST_LISTED
    assert all(fields["capacity"] == 3 for fields in named)
    [still] = said(caplog, STILL_FULL)
    assert still["capacity"] == 3
    [back] = said(caplog, BACK)
    assert back["dropped"] == many  # what was given up, said when the store is back
    assert sum(store.get(record(m).id) is not None for m in range(3 + many)) == 3


def test_an_outage_the_stop_ends_says_what_it_cost(caplog: pytest.LogCaptureFixture) -> None:
    """The counts went only with "run store back": a store that never came back before the
    stop left the records dropped past the first 20 said nowhere in the log."""
    store = OutageStore()
    many = LOST_LISTED + 5

    async def main() -> None:
        recorder = Recorder(store, capacity=3, output_budget=len(BIG), retry_initial=0.01)
        store.down = True
        for minute in range(3 + many):
            big = dataclasses.replace(record(minute, RunStatus.SUCCEEDED), output=BIG)
            await recorder.save(big)
        await recorder.close(0.05)
        assert recorder.lost == 3

    with caplog.at_level(logging.INFO, logger="crontask.recorder"):
        asyncio.run(main())
    assert said(caplog, BACK) == []
    [unended] = said(caplog, UNENDED)
    assert unended["dropped"] == many
    assert unended["outputs_cut"] == 2 + many
