"""The run records waiting for the store (see ``recorder``): bounded in number and in output.

At most ``capacity`` records wait; a record past that takes the place of the first in line
not being written at the moment, which is dropped (the recorder says so). Their outputs
together hold at most ``output_budget`` characters: a record kept past that keeps only the end
of its output (``CUT_TO`` characters), marked as cut. A run's output is up to 64 KiB, so
without that budget 10 000 records waiting through an outage could hold more than a gigabyte;
with it, a record is never lost for its output, only the start of that output is.

Records are keyed by (run id, attempt): the newest state of a record takes the place of the
one waiting, and keeps its place in line.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import OrderedDict
from collections.abc import Collection
from typing import Final, Literal

from reconciler.core.runs import RunRecord
from reconciler.store.base import RunStore, StoreUnavailable

# How a kept record is to be written once the store is back:
CREATE: Final = "create"  # only if the slot has no record (a skip): whatever exists stands
CLAIM: Final = "claim"  # a claim whose answer never came: written over its own record only
SAVE: Final = "save"  # the newest state of a record this process holds
Mode = Literal["create", "claim", "save"]

Key = tuple[str, int]
Entry = tuple[RunRecord, Mode]

DEFAULT_CAPACITY: Final = 10_000
DEFAULT_OUTPUT_BUDGET: Final = 32 * 1024 * 1024  # characters, all waiting outputs together
CUT_TO: Final = 1024  # characters a record past the budget keeps: the end, where errors are


class Waiting:
    def __init__(
        self, capacity: int = DEFAULT_CAPACITY, output_budget: int = DEFAULT_OUTPUT_BUDGET
    ) -> None:
        self.capacity = capacity
        self.output_budget = output_budget
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self._chars = 0  # the outputs' length, all entries together
        self.cuts = 0  # the outputs cut to their end for room (said by the recorder)
        # The records a write is taking to the store now: not the ones to drop for room (a
        # record dropped while its write goes through is not lost, and frees nothing).
        self.writing: frozenset[Key] = frozenset()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Key) -> bool:
        return key in self._entries

    @property
    def chars(self) -> int:
        return self._chars

    def get(self, key: Key) -> Entry | None:
        return self._entries.get(key)

    def put(self, record: RunRecord, mode: Mode) -> Key | None:
        """Keep ``record`` (in its key's place if it has one, else last); returns the key of
        the record dropped to make room, if one was."""
        key = (record.id, record.attempt)
        dropped = None
        if (old := self._entries.get(key)) is not None:
            self._chars -= len(old[0].output)
        elif len(self._entries) >= self.capacity:
            dropped = self._first_not_writing()
            lost, _ = self._entries.pop(dropped)
            self._chars -= len(lost.output)
        over = self._chars + len(record.output) > self.output_budget
        if over and (cut := _cut(record)) is not record:
            record = cut
            self.cuts += 1
        self._entries[key] = (record, mode)
        self._chars += len(record.output)
        return dropped

    def _first_not_writing(self) -> Key:
        for key in self._entries:
            if key not in self.writing:
                return key
        return next(iter(self._entries))  # all of them are on their way: the first goes

    def first(self, count: int) -> list[tuple[Key, Entry]]:
        return list(itertools.islice(self._entries.items(), count))

    def to_back(self, key: Key, entry: Entry) -> None:
        """``entry`` goes last in line, unless a newer state took its place meanwhile."""
        if self._entries.get(key) is entry:
            self._entries.move_to_end(key)

    def remove(self, key: Key, entry: Entry) -> None:
        """``entry`` was written (or given up): it goes, unless a newer state took its place
        meanwhile, which still waits."""
        if self._entries.get(key) is entry:
            del self._entries[key]
            self._chars -= len(entry[0].output)


def _cut(record: RunRecord) -> RunRecord:
    if len(record.output) <= CUT_TO:
        return record
    note = (
        f"[output cut to its last {CUT_TO:,} characters: it waited in memory for the run "
        "store with many others]\n"
    )
    return dataclasses.replace(record, output=note + record.output[-CUT_TO:])


def write_kept(
    store: RunStore, entries: list[Entry], told: Collection[Key] = ()
) -> tuple[list[RunRecord], list[Key], list[RunRecord]]:
    """Write kept records (distinct slots) in two transactions; returns the claims refused,
    the records of ``told`` this process wrote: a save, a claim taken, a skip inserted now
    or before (the call whose answer came late; only those skips are read back, one read each),
    and the marks the saves left standing (``RunStore.save_many``).

    A skip (CREATE) is inserted only if its slot has no record: whatever exists stands. A
    claim whose answer never came (CLAIM) is inserted, or, if its slot's record is this
    process's own (the claim went through and only its answer was lost with the connection),
    written over with the newest state; another owner's record stands, and the claim is
    refused. The newest state of a record this process holds (SAVE) is written over it."""
    inserts = [(record, mode) for record, mode in entries if mode != SAVE]
    saves = [record for record, mode in entries if mode == SAVE]
    refused: list[RunRecord] = []
    created: list[Key] = []
    if inserts:
        inserted = store.claim_many([record for record, _ in inserts])
        for (record, mode), ok in zip(inserts, inserted, strict=True):
            key = (record.id, record.attempt)
            if ok or mode == CREATE:
                if key in told and (ok or store.get(*key) == record):
                    created.append(key)
                continue
            held = store.get(*key)
            if held is None or record.owner is None or held.owner != record.owner:
                refused.append(record)
            else:
                saves.append(record)
    stood: list[RunRecord] = []
    if saves:
        stood = store.save_many(saves) or []  # a test's store may return nothing
        created += [(r.id, r.attempt) for r in saves if (r.id, r.attempt) in told]
    return refused, created, stood


def behind(records: list[RunRecord]) -> None:
    """The write of records queued before an outage began: they wait behind those kept."""
    raise StoreUnavailable("earlier records are waiting")
