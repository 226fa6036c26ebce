"""The runs a crash cut short that a start found its predecessor's, told of only by the
crontask that declares their task (README, *Notifications*).

The start marks them ``interrupted`` (``instance.recovery``'s ``told``) before its first pass,
so before it knows which tasks it declares: a task whose file was removed while crontask was
down is declared by no one here, perhaps by another crontask sharing the store. At the first
pass that succeeds, the runs of the tasks it declares are handed to the notifier (which routes
them by the definitions in force); the others' records get the note ``UNTOLD``, as a crontask
that does not declare a task leaves a run it found dead (``controller.heartbeat``): nothing is
sent, and a crontask that declares the task takes it over and tells of it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection, Sequence
from typing import Protocol

from reconciler.controller.reconcile import PassResult
from reconciler.core.runs import UNTOLD, UNTOLD_NOTES, RunRecord

log = logging.getLogger("crontask")


class Later(Protocol):
    """Records to be written off the loop, as the recorder writes any (``Recorder.later``):
    ``saves`` over what the store holds, ``creates`` only where it holds nothing."""

    def later(self, saves: Sequence[RunRecord], creates: Sequence[RunRecord] = ()) -> None: ...


class CrashedAtStart:
    """A pass observer: at the first pass that succeeds, ``tell`` (the notifier's ``crashed``)
    hears of the ``records`` whose task is declared, and the others are written again through
    ``recorder`` with the note ``UNTOLD`` (``unclaimed``: the keys of those the store had no
    record of, written only where it still has none, ``instance.Recovery``)."""

    def __init__(
        self,
        records: Sequence[RunRecord],
        tell: Callable[[list[RunRecord]], None],
        recorder: Later,
        unclaimed: Collection[tuple[str, int]] = (),
    ) -> None:
        self._records: list[RunRecord] | None = list(records)
        self.tell = tell
        self.recorder = recorder
        self.unclaimed = frozenset(unclaimed)

    def __call__(self, result: PassResult) -> None:
        if self._records is None or not result.ok:
            return
        records, self._records = self._records, None
        declared = result.desired.tasks
        ours = [r for r in records if r.task in declared]
        if ours:
            self.tell(ours)
        theirs = [_untold(r) for r in records if r.task not in declared]
        if not theirs:
            return
        creates = [r for r in theirs if (r.id, r.attempt) in self.unclaimed]
        saves = [r for r in theirs if (r.id, r.attempt) not in self.unclaimed]
        self.recorder.later(saves, creates)
        log.info(
            "runs interrupted by the crash of tasks no longer declared: not notified",
            extra={"fields": {"runs": len(theirs), "first": theirs[0].id}},
        )


def _untold(record: RunRecord) -> RunRecord:
    message = record.message or ""
    return (
        record
        if message.endswith(UNTOLD_NOTES)
        else dataclasses.replace(record, message=message + UNTOLD)
    )


__all__ = ["CrashedAtStart", "Later"]
