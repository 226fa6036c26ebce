"""What a run store outage costs, said once for each thing it does, with counts (``recorder``).

An outage is warned of once for each thing it does, not at each record or batch after it:
records kept (two tasks a second logged 26 lines in 13 s when each batch was warned of); slots
run without the store's check; outputs cut for room (``waiting``: a record past the outputs'
budget keeps only their end); records dropped for room, the buffer full (300 runs a second
through an outage logged 18 616 error lines a minute, one a record). A dropped record's run
happened and is not in the history, so the first ``LOST_LISTED`` are named, for a history
repaired by hand; the rest are counted. What came after each warning is counted, and the
counts go with ``run store back``, which ends the outage (or with the stop that ends it).
"""

from __future__ import annotations

import logging

from reconciler.controller.lost import LOST_LISTED
from reconciler.controller.waiting import CUT_TO, Key
from reconciler.core.runs import RunRecord

log = logging.getLogger("crontask.recorder")

CUT = "run store unavailable; outputs of records waiting cut to their last characters"
FULL = "run record buffer full; oldest record dropped"
STILL_FULL = "run record buffer still full; more records dropped, counted, not named"
BACK = "run store back; pending records written"
UNENDED = "run store outage not over at the stop"


class OutageLog:
    def __init__(self) -> None:
        self._told: set[str] = set()
        self._kept_after_told = 0
        self._cut = 0
        self._dropped = 0

    def kept(self, message: str, records: int, error: str) -> None:
        """``records`` kept for later, for the reason ``message`` says."""
        if message in self._told:
            self._kept_after_told += records
            return
        self._told.add(message)
        log.warning(message, extra={"fields": {"runs": records, "error": error}})

    def cut(self, record: RunRecord, budget: int, waiting: int) -> None:
        """``record``'s output was cut to its end to keep it (``waiting.Waiting.put``)."""
        self._cut += 1
        if CUT in self._told:
            return
        self._told.add(CUT)
        log.warning(
            CUT,
            extra={
                "fields": {
                    "run": record.id,
                    "attempt": record.attempt,
                    "kept_characters": CUT_TO,
                    "output_budget": budget,
                    "waiting": waiting,
                }
            },
        )

    def dropped(self, key: Key, capacity: int, dropped: int) -> None:
        """The record of ``key`` was dropped for room; ``dropped``: all given up on so far."""
        self._dropped += 1
        fields: dict[str, object] = {"capacity": capacity, "dropped": dropped}
        if self._dropped <= LOST_LISTED:
            log.error(FULL, extra={"fields": {"run": key[0], "attempt": key[1], **fields}})
        elif self._dropped == LOST_LISTED + 1:
            log.error(STILL_FULL, extra={"fields": fields})

    def back(self, *, stopping: bool = False) -> None:
        """Nothing waits any more: the outage is over, and said with what it cost. Or, with
        ``stopping``, the stop gave up on the records still waiting (each said, ``lost``):
        what the outage cost before them is said all the same, not left to the metric."""
        log.log(
            logging.WARNING if stopping else logging.INFO,
            UNENDED if stopping else BACK,
            extra={
                "fields": {
                    "kept_since_warning": self._kept_after_told,
                    "outputs_cut": self._cut,
                    "dropped": self._dropped,
                }
            },
        )
        self._told.clear()
        self._kept_after_told = self._cut = self._dropped = 0
