"""A scrape never waits for the run store to check the runs in progress elsewhere: with the
store down, a read waits for its connect timeout (10 s with PostgreSQL), as long as Prometheus'
default scrape timeout, and the target would go down while crontask is fine."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection

from reconciler.core.runs import LastOutcomes, RunRecord, RunStatus
from reconciler.sinks.metrics import MemoryTasks, Metrics
from reconciler.store import MemoryRunStore
from tests.helpers import definition
from tests.sinks._history import PlainReads
from tests.sinks.test_metrics import NEXT
from tests.sinks.test_metrics_running import A, running
from tests.store._records import rec

Spawn = Callable[[Callable[[], None]], None]
WAIT = 5.0  # seconds: only reached when a scrape is stuck, the failure this file looks for


class Stalled(PlainReads):
    """The run store as the metrics' history, whose ``running`` waits for ``answer`` once
    ``stalled`` (a store that does not answer yet); ``asked`` is set when it is called."""

    def __init__(self, store: MemoryRunStore) -> None:
        self.store = store
        self.stalled = False
        self.asked = threading.Event()
        self.answer = threading.Event()
        self.calls = 0

    def last_outcomes(self, tasks: Collection[str]) -> dict[str, LastOutcomes]:
        return self.store.last_outcomes(tasks)

    def running(self, task: str | None = None) -> list[RunRecord]:
        if self.stalled:
            self.calls += 1
            self.asked.set()
            assert self.answer.wait(WAIT)
        return self.store.running(task)


def counting_elsewhere(history: Stalled, spawn: Spawn | None = None) -> Metrics:
    """Metrics that count a run of ``a`` going on at another replica (checks started by
    ``spawn``, or Metrics' own threads)."""
    history.store.claim(rec(A, at=1, status=RunStatus.RUNNING, owner="h:1:old"))
    tasks = MemoryTasks()
    tasks.set(definition("a"), NEXT, 60.0)
    if spawn is None:
        metrics = Metrics(tasks, history=history, owner="h:2:me")
    else:
        metrics = Metrics(tasks, history=history, owner="h:2:me", spawn=spawn)
    assert running(metrics, A)[0] == 1
    history.stalled = True
    return metrics


def test_scrapes_do_not_wait_for_a_store_that_does_not_answer() -> None:
    history = Stalled(MemoryRunStore())
    metrics = counting_elsewhere(history)
    shown: list[float | None] = []
    done = threading.Event()

    def scrape() -> None:
        shown.append(running(metrics, A)[0])
        shown.append(running(metrics, A)[0])  # a check in flight: no second one
        done.set()

    scraper = threading.Thread(target=scrape)
    scraper.start()
    try:
        assert done.wait(WAIT), "a scrape waited for the store"
        assert history.asked.wait(WAIT)  # the check went on without the scrape
    finally:
        history.answer.set()
        scraper.join()
    assert shown == [1, 1]
    assert history.calls == 1


def test_the_end_read_once_the_store_answers_shows_at_the_next_scrape() -> None:
    history = Stalled(MemoryRunStore())
    checks: list[threading.Thread] = []

    def spawn(work: Callable[[], None]) -> None:
        checks.append(threading.Thread(target=work))
        checks[-1].start()

    metrics = counting_elsewhere(history, spawn=spawn)
    assert running(metrics, A)[0] == 1  # starts the check, which waits for the store
    assert history.asked.wait(WAIT)
    (elsewhere,) = history.store.running()
    assert elsewhere.started_at is not None
    history.store.complete(elsewhere.finish(RunStatus.SUCCEEDED, finished_at=elsewhere.started_at))
    history.answer.set()
    (check,) = checks
    check.join()
    assert running(metrics, A) == (0, None)
