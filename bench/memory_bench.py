"""Memory over time: TASKS tasks firing every second for SECONDS, RSS sampled each second.

    python bench/memory_bench.py --worker TASKS SECONDS

In this fresh process: ``ApsScheduler`` + the real ``Dispatcher`` (policies, records, claims
and completions through the recorder's thread pool, log lines formatted as ``crontask run``
does and discarded by the parent) with a no-op attempt in place of a process (a process per
run would measure fork, not crontask), and a ``MemoryRunStore`` pruned every 10 s to the
default history limits (3 succeeded / 1 failed per task), as ``crontask run``'s housekeeping
does, so that the history itself does not grow. Every task has the six-field schedule
``* * * * * *``. Growth is RSS at the end minus RSS after the warm-up (the first quarter of
the run, at least 10 s): the steady state should not grow.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import gc
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Json, emit, percentile, rss_bytes

PRUNE_EVERY = 10.0


async def _soak(tasks: int, seconds: float) -> Json:
    from reconciler import logs
    from reconciler.controller.dispatch import Dispatcher
    from reconciler.core.desired import Definition, Location
    from reconciler.core.model import CronTask
    from reconciler.core.plan import Operation, Step
    from reconciler.core.runs import RunRecord, RunStatus
    from reconciler.runner.base import Actions, Outcome
    from reconciler.scheduling.apscheduler import ApsScheduler
    from reconciler.store.memory import MemoryRunStore

    logs.configure("info", "logfmt")
    # The start delays are allocated up front and filled in place: a list of 600 000 floats
    # growing during the run is about 20 MiB that would count as crontask's growth.
    lateness = array.array("d", bytes(8 * tasks * (int(seconds) + 2)))
    measured = 0
    outcomes = {"started": 0, "skipped": 0}

    class NoopAttempt:
        def __init__(self, record: RunRecord) -> None:
            self.record = record

        async def run(self) -> Outcome:
            nonlocal measured
            if measured < len(lateness):
                lateness[measured] = time.time() - self.record.scheduled_at.timestamp()
                measured += 1
            return Outcome(RunStatus.SUCCEEDED, 0, None, "exit code 0", "")

        def stop(self, reason: str) -> None:
            pass

    class NoopAction:
        field = "command"

        def attempt(self, definition: Definition, record: RunRecord) -> NoopAttempt:
            return NoopAttempt(record)

    store = MemoryRunStore()
    dispatcher = Dispatcher(store, owner="bench:1:x", actions=Actions([NoopAction()]))

    def counted(record: RunRecord) -> None:
        if record.status is RunStatus.RUNNING:
            outcomes["started"] += 1
        elif record.status is RunStatus.SKIPPED:
            outcomes["skipped"] += 1

    dispatcher.subscribe(counted)

    def on_fire(key: str, at: datetime) -> None:
        definition = scheduler.owned().get(key)
        if definition is not None:
            dispatcher.fire(definition, at)

    scheduler = ApsScheduler(on_fire)
    definitions = [
        Definition.of(
            CronTask.model_validate(
                {
                    "apiVersion": "crontask.dev/v1alpha1",
                    "kind": "CronTask",
                    "metadata": {"name": f"tick-{i:05d}", "namespace": "bench"},
                    "spec": {"schedule": "* * * * * *", "command": {"args": ["noop"]}},
                }
            ),
            Location("bench", f"tick-{i}", 1, 1),
        )
        for i in range(tasks)
    ]
    gc.collect()
    rss_start = rss_bytes()
    for definition in definitions:
        scheduler.apply(Step(Operation.ADD, definition.key, definition, None))
    scheduler.start()
    now = datetime.now(UTC)
    for definition in definitions:
        dispatcher.track(definition.key, now)
    limits = {d.key: (3, 1) for d in definitions}
    samples: list[tuple[float, int]] = []
    began = time.monotonic()
    warmup = max(10.0, seconds / 4)
    next_prune = began + PRUNE_EVERY
    while (elapsed := time.monotonic() - began) < seconds:
        samples.append((elapsed, rss_bytes()))
        if time.monotonic() >= next_prune:
            await dispatcher.recorder.call(store.prune, limits, None, datetime.now(UTC))
            next_prune += PRUNE_EVERY
        await asyncio.sleep(1.0 - (time.monotonic() - began) % 1.0)
    scheduler.shutdown()
    await dispatcher.drain(10.0)
    await dispatcher.recorder.close(timeout=5.0)
    after_warmup = [rss for at, rss in samples if at >= warmup]
    rss_warm = after_warmup[0] if after_warmup else samples[-1][1]
    rss_end = samples[-1][1]
    return {
        "tasks": tasks,
        "seconds": seconds,
        "expected_runs": tasks * int(seconds),
        "runs": outcomes["started"],
        "skipped": outcomes["skipped"],
        "lateness_p50_ms": percentile(lateness[:measured], 0.5) * 1e3,
        "lateness_p99_ms": percentile(lateness[:measured], 0.99) * 1e3,
        "rss_idle": rss_start,
        "rss_warm": rss_warm,
        "rss_end": rss_end,
        "rss_max": max(rss for _, rss in samples),
        "growth": rss_end - rss_warm,
        "warmup_s": warmup,
        "series_mib": [round(rss / 2**20, 1) for _, rss in samples[:: max(1, len(samples) // 20)]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true", help="run one measurement")
    parser.add_argument("tasks", type=int)
    parser.add_argument("seconds", type=float)
    args = parser.parse_args(argv)
    from reconciler.host import raise_open_files

    raise_open_files()  # as `crontask run` does at start: its bound on runs at once follows it
    emit(asyncio.run(_soak(args.tasks, args.seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
