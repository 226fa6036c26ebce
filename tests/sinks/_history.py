"""What the test doubles of the metrics' history (``metrics_runs.History``) read of their run
store as it is: a run's attempts, and the runs marked interrupted for a dead crontask."""

from __future__ import annotations

from datetime import datetime

from reconciler.core.runs import RunRecord
from reconciler.store import MemoryRunStore


class PlainReads:
    store: MemoryRunStore

    def attempts(self, run_id: str) -> list[RunRecord]:
        return self.store.attempts(run_id)

    def untold(
        self, since: datetime, after: tuple[datetime, str, int] | None = None
    ) -> list[RunRecord]:
        return self.store.untold(since, after)
