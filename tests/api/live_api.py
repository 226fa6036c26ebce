"""The parts ``crontask run`` builds around the API source, in this process, as the tests of
API-owned tasks need them: any store (files, a racing or failing twin), the empty-set guard on
or off, a scheduler that can be made to fail, and a folder source beside the API's.

Everything runs on an event loop of its own (the scheduler on a fake clock: nothing fires);
``client()`` is the real app over the real service.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from reconciler.api.app import create_app
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import PassResult, Reconciler
from reconciler.controller.service import Service
from reconciler.core.plan import Step
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.sinks.metrics import Metrics
from reconciler.sources.api import ApiSource, ApiTaskStore
from reconciler.sources.base import Source
from reconciler.store import MemoryRunStore
from tests.api.conftest import TestClient
from tests.helpers import local_actions

T = TypeVar("T")
JSON = {"content-type": "application/json"}


class BreakableScheduler(MemoryScheduler):
    """The fake-clock scheduler; while ``broken`` is set, applying a step raises it (a pass
    that fails half way, as a scheduler that refuses a job would make it)."""

    broken: Exception | None = None

    def apply(self, step: Step) -> None:
        if self.broken is not None:
            raise self.broken
        super().apply(step)


class LiveApi:
    def __init__(
        self,
        store: ApiTaskStore,
        *,
        allow_empty: bool = False,
        others: Sequence[Source] = (),
    ) -> None:
        self.api = ApiSource(store)
        self.sources: list[Source] = [*others, self.api]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.scheduler = BreakableScheduler(lambda key, at: None, datetime.now(UTC))
        dispatcher = Dispatcher(MemoryRunStore(), owner="h:1:x", actions=local_actions())
        self.reconciler = Reconciler(
            self.sources, self.scheduler, dispatcher, allow_empty=allow_empty
        )
        self.on_loop(self.reconciler.run_pass(None))  # the first pass reads every source
        self.service = Service(
            loop=self.loop,
            store=MemoryRunStore(),
            scheduler=self.scheduler,
            dispatcher=dispatcher,
            reconciler=self.reconciler,
            reconcile=self.reconciler.run_pass,
            api=self.api,
            sources=self.sources,
        )

    def on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def resync(self) -> PassResult:
        return self.on_loop(self.reconciler.run_pass(None))

    def scheduled(self) -> dict[str, str]:
        """Each scheduled task's key and where its definition comes from."""
        return {k: d.location.source for k, d in self.scheduler.owned().items()}

    def client(self) -> TestClient:
        app = create_app(self.service, auth=None, metrics=Metrics())
        return TestClient(app, raise_server_exceptions=False)

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def files_root(tmp_path: Path) -> Path:
    return tmp_path / "state" / "api-tasks"
