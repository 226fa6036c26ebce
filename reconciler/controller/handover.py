"""Concurrency policies across a handover between replicas.

When a task moves to this replica (its owner left, or a replica joined), the previous owner
may still be running one of its runs: its process is elsewhere, and only the shared run store
knows of it. Until no such run is left, each new run of an *inherited* task first looks there:
under ``Forbid`` the slot is skipped while a run of another replica is going, under ``Replace``
the other replica is asked (through the store) to stop it and the new run starts once it has
ended, under ``Allow`` nothing is checked. Once a look finds nothing, the task is an ordinary
one again: the store is not asked at every fire.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from reconciler.core.model import ConcurrencyPolicy
from reconciler.core.runs import RunRecord
from reconciler.store.base import RunStore

log = logging.getLogger("crontask.runner")

T = TypeVar("T")
Call = Callable[..., Coroutine[Any, Any, Any]]


class Handover:
    def __init__(
        self,
        store: RunStore,
        me: str,
        call: Call,
        *,
        poll: float = 0.25,
        patience: float = 60.0,
    ) -> None:
        self.store = store
        self.me = me
        self._call = call  # runs a blocking store call in the store's threads
        self.poll = poll
        self.patience = patience  # how long a replaced run may take to stop
        self._inherited: set[str] = set()

    def inherit(self, key: str) -> None:
        self._inherited.add(key)

    def forget(self, key: str) -> None:
        self._inherited.discard(key)

    def inherited(self, key: str) -> bool:
        return key in self._inherited

    async def settle(self, key: str, policy: ConcurrencyPolicy, reason: str) -> str | None:
        """None: the run may start. Otherwise why the slot is skipped (Forbid)."""
        foreign = await self._foreign(key)
        if not foreign:
            self._inherited.discard(key)
            return None
        ids = ", ".join(f"{r.id} on {r.owner}" for r in foreign)
        if policy is ConcurrencyPolicy.FORBID:
            return f"previous run still running ({ids}); policy Forbid"
        if policy is ConcurrencyPolicy.REPLACE:
            await self._call(self.store.request_stop, [r.id for r in foreign], reason)
            log.info(
                "asked another replica to stop a run",
                extra={"fields": {"task": key, "runs": ids, "reason": reason}},
            )
            await self._ended(key, {r.id for r in foreign})
        return None

    async def _foreign(self, key: str) -> list[RunRecord]:
        running: list[RunRecord] = await self._call(self.store.running, key)
        return [r for r in running if r.owner != self.me]

    async def _ended(self, key: str, ids: set[str]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.patience
        while loop.time() < deadline:
            if not {r.id for r in await self._foreign(key)} & ids:
                return
            await asyncio.sleep(self.poll)
        log.warning(
            "a replaced run on another replica did not stop in time; starting anyway",
            extra={"fields": {"task": key, "runs": ",".join(sorted(ids))}},
        )
