"""A scrape does not wait for the run store's read of the tasks new to it (their last outcomes
and runs in progress elsewhere): it starts that read in a thread of its own, waits for it
``SEED_WAIT_SECONDS`` at most, and serves what it knows. Read in the scrape's own thread, a
hung store held every scrape (60 to 120 s, each queued behind the first) whenever a task was
new to the process: at the start, for a task added, at every handover under --ha; Prometheus
marked the target down and ``CrontaskDown`` fired while crontask was fine."""

from __future__ import annotations

import threading
from collections.abc import Collection

import pytest

from reconciler.core.runs import LastOutcomes, RunRecord, RunStatus
from reconciler.sinks import metrics_runs
from reconciler.sinks.metrics import MemoryTasks, Metrics
from reconciler.store import MemoryRunStore, StoreUnavailable
from tests.helpers import definition
from tests.sinks._history import PlainReads
from tests.sinks.test_metrics import NEXT, T0, Samples, run, samples
from tests.sinks.test_metrics_history import SUCCESS, ended
from tests.store._records import rec

WAIT = 5.0  # seconds: only reached when a scrape is stuck, the failure this file looks for
HUNG = 30.0  # how long the store's read waits for its release at most: longer than WAIT
A, B = "default/a", "default/b"
RUNNING = "crontask_running_runs"
SEED_THREAD = "crontask-metrics-history"


class Hung(PlainReads):
    """The run store as the metrics' history, whose ``last_outcomes`` waits for ``release``
    (a store that does not answer); ``asked`` is set when it is called. ``refuse``: once
    released, it raises (a store that is down)."""

    def __init__(self, store: MemoryRunStore) -> None:
        self.store = store
        self.asked = threading.Event()
        self.release = threading.Event()
        self.refuse = False
        self.calls: list[set[str]] = []

    def last_outcomes(self, tasks: Collection[str]) -> dict[str, LastOutcomes]:
        self.calls.append(set(tasks))
        self.asked.set()
        assert self.release.wait(HUNG)
        if self.refuse:
            raise StoreUnavailable("connection timed out")
        return self.store.last_outcomes(tasks)

    def running(self, task: str | None = None) -> list[RunRecord]:
        return self.store.running(task)


def history() -> Hung:
    """A history holding a success of ``a`` and a run of ``a`` going on at another replica."""
    store = MemoryRunStore()
    store.save_many([rec(A, at=1)])
    store.claim(rec(A, at=2, status=RunStatus.RUNNING, owner="h:1:old"))
    return Hung(store)


def of_a(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset({("task", A), *labels.items()})))


def scrape_aside(metrics: Metrics) -> tuple[list[Samples], threading.Event, threading.Thread]:
    """A scrape in a thread of its own: what it showed, set when it returned, its thread."""
    shown: list[Samples] = []
    done = threading.Event()

    def scrape() -> None:
        shown.append(samples(metrics))
        done.set()

    scraper = threading.Thread(target=scrape)
    scraper.start()
    return shown, done, scraper


def seed_threads(before: Collection[threading.Thread]) -> list[threading.Thread]:
    """The metrics' history reads started since ``before`` was listed."""
    return [t for t in threading.enumerate() if t.name == SEED_THREAD and t not in before]


def test_a_scrape_returns_while_the_read_of_a_new_task_hangs_and_the_next_shows_it() -> None:
    hung = history()
    tasks = MemoryTasks()
    tasks.set(definition("a"), NEXT, 60.0)
    metrics = Metrics(tasks, history=hung, owner="h:2:me")
    before = threading.enumerate()
    shown, done, scraper = scrape_aside(metrics)
    try:
        assert done.wait(WAIT), "a scrape waited for the store"
        assert hung.asked.is_set()  # the read is under way, held by the store
        assert not hung.release.is_set()
        (seed,) = seed_threads(before)
        again = samples(metrics)  # the read in flight: no second one, and no wait for it
    finally:
        hung.release.set()
        scraper.join()
    assert hung.calls == [{A}]
    # Not read yet: a task with no history, its counters from 0 (they count this process's
    # attempts), no last success rather than a wrong one, the run elsewhere not counted yet.
    for found in (shown[0], again):
        assert of_a(found, "crontask_runs_total", status="succeeded") == 0
        assert of_a(found, SUCCESS) is None
        assert of_a(found, RUNNING) == 0
    seed.join(WAIT)
    assert not seed.is_alive()
    found = samples(metrics)
    assert of_a(found, SUCCESS) == ended(1)
    assert of_a(found, RUNNING) == 1  # the run going on at the replica that had the task
    assert hung.calls == [{A}]


def test_runs_heard_while_the_read_hangs_count_on_and_tasks_that_came_meanwhile_are_read_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Counters only go up across the read; the tasks that came while one was in flight are
    read by the next, one read at a time."""
    monkeypatch.setattr(metrics_runs, "SEED_WAIT_SECONDS", 0.0)  # the scrapes do not wait
    hung = history()
    tasks = MemoryTasks()
    tasks.set(definition("a"), NEXT, 60.0)
    metrics = Metrics(tasks, history=hung, owner="h:2:me")
    before = threading.enumerate()
    try:
        first = samples(metrics)
        assert hung.asked.wait(WAIT)
        (seed,) = seed_threads(before)
        heard = run(metrics, A, RunStatus.SUCCEEDED, at=T0)
        tasks.set(definition("b"), NEXT, 60.0)
        meanwhile = samples(metrics)
    finally:
        hung.release.set()
    seed.join(WAIT)
    assert hung.calls == [{A}]
    assert of_a(first, "crontask_runs_total", status="succeeded") == 0
    assert of_a(meanwhile, "crontask_runs_total", status="succeeded") == 1
    assert heard.finished_at is not None
    assert of_a(meanwhile, SUCCESS) == heard.finished_at.timestamp()
    seen = threading.enumerate()
    found = samples(metrics)  # a's read applied (the later success kept); b's starts now
    assert of_a(found, "crontask_runs_total", status="succeeded") == 1
    assert of_a(found, SUCCESS) == max(ended(1), heard.finished_at.timestamp())
    assert of_a(found, RUNNING) == 1
    for thread in seed_threads(seen):
        thread.join(WAIT)
    assert hung.calls == [{A}, {B}]


def test_after_a_read_that_failed_slowly_the_next_is_not_waited_for(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A store that is down (a connect timeout) costs a scrape its wait once, not at every
    attempt to read it again; a read that works makes the scrapes wait again."""
    monkeypatch.setattr(metrics_runs, "SEED_WAIT_SECONDS", 0.0)
    hung = history()
    hung.refuse = True
    tasks = MemoryTasks()
    tasks.set(definition("a"), NEXT, 60.0)
    metrics = Metrics(tasks, history=hung, owner="h:2:me")
    before = threading.enumerate()
    samples(metrics)  # returns at once (no wait); its read fails after that
    (seed,) = seed_threads(before)
    hung.release.set()
    seed.join(WAIT)
    assert "cannot read the last outcomes" in caplog.text
    # Were the next read waited for, this scrape would wait a minute for a store that hangs.
    monkeypatch.setattr(metrics_runs, "SEED_WAIT_SECONDS", 60.0)
    hung.release.clear()
    hung.refuse = False
    before = threading.enumerate()
    shown, done, scraper = scrape_aside(metrics)
    try:
        assert done.wait(WAIT), "a scrape waited for a store that failed slowly before"
        (seed,) = seed_threads(before)
    finally:
        hung.release.set()
        scraper.join()
    assert of_a(shown[0], SUCCESS) is None
    seed.join(WAIT)
    assert of_a(samples(metrics), SUCCESS) == ended(1)
    assert len(hung.calls) == 2
