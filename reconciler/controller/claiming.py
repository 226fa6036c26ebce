"""Claims of slots, answered: the part of :class:`~reconciler.controller.recorder.Recorder`
that tells each caller whether it may run its slot (see ``recorder``'s docstring).

A claim goes with the others of its burst (``lane``); each caller's future is answered True
(claimed), False (the store is unavailable: the record is kept for later, unless the caller
asked it not to be) or with ``DuplicateRun`` (another instance holds the slot). A future a
caller cancelled is not answered again (``Lane.answer``, ``lane.refuse``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from reconciler.controller.lane import Batch, Lane, refuse
from reconciler.controller.waiting import CLAIM, Mode
from reconciler.core.runs import RunRecord
from reconciler.store.base import DuplicateRun, RunStore, StoreUnavailable

log = logging.getLogger("crontask.recorder")


class Claiming:
    """A mixin of :class:`~reconciler.controller.recorder.Recorder`, which holds the state
    declared here."""

    store: RunStore
    _lane: Lane
    _unkept: set[asyncio.Future[bool]]
    call: Callable[..., Awaitable[Any]]
    _keep: Callable[[RunRecord, Mode], None]
    _keep_for_later: Callable[[Batch, str, StoreUnavailable, Mode], None]
    _answered: Callable[[], None]  # a write went through: the records waiting go now

    async def claim(self, record: RunRecord) -> bool:
        """Claim a slot. True: claimed. False: the store is unavailable; the record is kept
        for later and the caller runs the slot anyway. Raises DuplicateRun: another instance
        holds the slot, do not run it."""
        return await self.claim_soon(record)

    def claim_soon(self, record: RunRecord, *, keep: bool = True) -> asyncio.Future[bool]:
        """``claim``, begun now (on the loop, without awaiting): the future says what
        ``claim`` would return or raise. ``keep`` False: a claim the store could not answer
        (False) is not kept for later either, nor written ever: the caller does not run the
        slot. A future nobody awaits (its run was cancelled) is not reported as an exception
        never retrieved (``lane.refuse``)."""
        claimed = self._lane.put("claim", record)
        if not keep:
            self._unkept.add(claimed)
            claimed.add_done_callback(self._unkept.discard)
        return claimed

    async def _claimed(self, batch: Batch, written: asyncio.Future[Any]) -> None:
        try:
            results = await written
        except StoreUnavailable as err:
            kept: Batch = []
            for record, claimed in batch:
                if claimed in self._unkept:
                    self._lane.answer(claimed, False)  # not run: nothing of it to write
                else:
                    kept.append((record, claimed))
            if kept:
                message = "run store unavailable; running anyway, records kept for later"
                self._keep_for_later(kept, message, err, CLAIM)
            return
        except Exception:
            # A record the store refuses must not leave the rest of its batch unclaimed: each
            # would run without the check that another instance holds its slot.
            log.exception("could not claim slots together; claiming them one by one")
            for record, claimed in batch:
                await self._claim_one(record, claimed)
            return
        self._answered()
        for (record, claimed), ok in zip(batch, results, strict=True):
            if ok:
                self._lane.answer(claimed, True)
            else:
                refuse(claimed, DuplicateRun(record.id, record.attempt))

    async def _claim_one(self, record: RunRecord, claimed: asyncio.Future[bool]) -> None:
        try:
            (ok,) = await self.call(self.store.claim_many, [record])
        except StoreUnavailable:
            if claimed not in self._unkept:
                self._keep(record, CLAIM)
            self._lane.answer(claimed, False)
        except Exception as err:
            refuse(claimed, err)
        else:
            self._answered()
            if ok:
                self._lane.answer(claimed, True)
            else:
                refuse(claimed, DuplicateRun(record.id, record.attempt))
