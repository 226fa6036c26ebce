"""crontask's benchmark suite: one command, one table.

    python bench/run.py                 # everything, full sizes (about 25 minutes)
    python bench/run.py --quick         # small sizes, about 6 minutes (CI keeps the code working)
    python bench/run.py --only lateness,reconcile --sizes 1000 --repeats 5

Scenarios (each a plain module under bench/, each measurement in a fresh interpreter):

- ``lateness``  N no-op tasks due in the same second: crontask's hand-off alone, crontask
  through the dispatcher, plain APScheduler 3.11 (AsyncIOScheduler, BackgroundScheduler);
  ``bench/lateness.py``.
- ``command``   N ``/bin/true`` tasks due in the same second: crontask's Dispatcher +
  CommandRun against plain APScheduler + subprocess; ``bench/lateness.py``.
- ``jobs``      N ``job`` tasks due in the same second through the real ``crontask run`` and the
  project's Kubernetes API emulator: the slot to each Job created, against the same tasks as
  ``command`` runs (the slot to the process starting); ``bench/job_bench.py``.
- ``reconcile`` cold start of 10 000 tasks in 1 000 files, and one edited file in effect, end to
  end through the real ``crontask run`` and its file watcher; ``bench/reconcile_bench.py``.
- ``scale``     one instance at 10 000 and 100 000 tasks (10 a file): until all scheduled, RSS per
  task, a resync that finds nothing, ``crontask validate``, one edited file in effect,
  ``crontask run``'s start-up, and ``crontask run --git`` restarted on the revision in force;
  ``bench/reconcile_bench.py``.
- ``memory``    RSS per task at 10 000 tasks (from the cold start), and RSS over a run of 1 000
  tasks firing every second; ``bench/memory_bench.py``.
- ``k8s``       CronTask custom resources through the project's Kubernetes API emulator
  (``tests/k8s/emulator``) and the real ``crontask run --kubernetes``: 1 000 objects to
  scheduled, one spec edit in effect (and its status), and a run's end to its status being
  visible; ``bench/k8s_bench.py``.
- ``store``     ``bench/store_bench.py`` on SQLite, and on PostgreSQL with ``--pg URL`` or
  ``CRONTASK_TEST_POSTGRES_URL``.
- ``hostile``   reading an alias bomb and a megabyte of tiny values (cases of
  ``tests/hostile``) against PyYAML's own ``load`` of the same file, and ``crontask validate``
  on the bomb against ``validate`` on one good task; ``bench/hostile_bench.py``.
- ``api``       the real ``crontask run`` under a flood of parallel GETs (RSS before, at peak,
  60 s after), and listing 10 000 tasks page by page and through ``crontask tasks``;
  ``bench/api_bench.py``.
- ``page``      reads whose cost grows with the run history, through the real ``crontask run``
  on a store of 1 000 tasks x 500 runs: the first ``/metrics`` scrape, the status page's
  ``?state=failing`` and ``GET /api/v1/runs?trigger=manual``; ``bench/page_bench.py``
  (``--against DIR`` there compares another checkout).
- ``metrics``   ``/metrics`` of the real ``crontask run`` at 10 000 tasks that have each failed and
  succeeded once: size, scrape time, and the start delay of per-second tasks with and without a
  scrape every second; then the same with ``--metrics-per-task-histograms``;
  ``bench/metrics_bench.py``. ``--metrics-baseline REF`` measures an earlier commit too.
- ``ha``        replicas (``crontask run --ha``) on PostgreSQL: failover after ``kill -9`` and
  after SIGTERM (median of the repeats), and N tasks on one replica against 3N over three on
  the same machine (tasks per replica, start delay, CPU); ``bench/ha_bench.py``.

Prints one table and writes it, with the machine's description, to ``bench/RESULTS.md``
(``bench/RESULTS-quick.md`` with ``--quick``; ``--output`` to choose). Every figure is measured
in this run; repeated measurements are alternated between the contenders and reported as
medians.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_DIR,
    PYTHON,
    ROOT,
    Json,
    machine,
    median_of,
    run_worker,
)

SCENARIOS = (
    "lateness",
    "command",
    "inside",
    "scale",
    "jobs",
    "reconcile",
    "k8s",
    "memory",
    "store",
    "hostile",
    "api",
    "page",
    "metrics",
    "ha",
)
KIB = 1024
MIB = 1024 * 1024
SOAK_GROWTH_BOUND = 10 * MIB


@dataclasses.dataclass
class Row:
    scenario: str
    measure: str
    crontask: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    result: str = ""  # PASS / FAIL / TODO / "" (information)


@dataclasses.dataclass
class Config:
    quick: bool
    sizes: list[int]
    command_sizes: list[int]
    repeats: int
    fire_repeats: int  # fire lateness and command tasks: seconds each, and the noisiest
    cold_tasks: int
    edit_sizes: list[int]
    edits: int
    soak_tasks: int
    soak_seconds: float
    memory_tasks: int
    k8s_tasks: int
    k8s_edits: int
    k8s_runs: int
    job_tasks: int
    store_rows: int
    pg: str | None
    metrics_tasks: int
    metrics_scrapes: int
    metrics_window: float
    metrics_windows: int
    metrics_baseline: str | None


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def fmt_ms(value: float) -> str:
    return "n/a" if value != value else f"{value:,.1f} ms"


def fmt_s(value: float) -> str:
    return "n/a" if value != value else f"{value:,.2f} s"


def ratio(a: float, b: float) -> float:
    return a / b if b and a == a and b == b else float("nan")


def fmt_ratio(value: float) -> str:
    return "n/a" if value != value else f"{value:.2f}x"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def pick(results: Sequence[Json], *path: str) -> float:
    """The median over repeats of a numeric field (NaN where missing or failed)."""
    values: list[float] = []
    for result in results:
        value: Any = result
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, int | float):
            values.append(float(value))
    return median_of(values)


def errors_of(results: Sequence[Json]) -> list[str]:
    return [str(r["error"]) for r in results if "error" in r]


# -- scenarios -------------------------------------------------------------------------------


def alternate(
    modes: Sequence[str], repeats: int, measure: Callable[[str, int], Json], n: int
) -> dict[str, list[Json]]:
    """Each mode ``repeats`` times, in alternating order (ABC, CBA, ABC, ...)."""
    results: dict[str, list[Json]] = {mode: [] for mode in modes}
    for r in range(repeats):
        for mode in modes if r % 2 == 0 else list(reversed(modes)):
            log(f"  {mode} N={n} (repeat {r + 1}/{repeats})")
            results[mode].append(measure(mode, n))
    return results


def lateness_worker(mode: str, n: int) -> Json:
    # Command tasks run with the store `crontask run` uses by default (SQLite, a fresh file).
    store = ["--store", "sqlite"] if mode == "command" else []
    return run_worker("lateness", [mode, str(n), *store], timeout=120 + n / 20)


def stronger(*baselines: Sequence[Json]) -> list[Json]:
    """The stronger of the baselines, figure by figure: one pseudo-result per repeat whose
    every number is the lowest (the best) of the baselines' medians, so that every ratio is
    taken against whichever baseline did better on that figure in this run."""
    best: Json = {}
    for section in ("lateness", "done", "delay"):
        for key in ("first_ms", "p50_ms", "p99_ms", "max_ms"):
            values = [pick(b, section, key) for b in baselines]
            values = [v for v in values if v == v]
            if values:
                best.setdefault(section, {})[key] = min(values)
    cpu = [v for v in (pick(b, "cpu_s") for b in baselines) if v == v]
    if cpu:
        best["cpu_s"] = min(cpu)
    best["lost"] = min((int(r.get("lost", 0)) for b in baselines for r in b), default=0)
    return [best]


def scenario_lateness(config: Config, rows: list[Row]) -> None:
    modes = ["handoff", "dispatch", "aps-asyncio", "aps-background"]
    for n in config.sizes:
        log(f"lateness: N={n}")
        results = alternate(modes, config.fire_repeats, lateness_worker, n)
        base = stronger(results["aps-asyncio"], results["aps-background"])
        base_p99 = pick(base, "lateness", "p99_ms")
        for mode, label in (
            ("handoff", "(a) hand-off alone"),
            ("dispatch", "(b) through the dispatcher"),
        ):
            mine = results[mode]
            p99 = pick(mine, "lateness", "p99_ms")
            check = None
            target = ""
            if n == 1000:
                check = p99 <= 1.1 * base_p99
                target = "p99 <= 1.1x APScheduler"
            rows.append(
                Row(
                    "fire lateness",
                    f"N={n} no-op {label}: p50 / p99 / max",
                    f"{fmt_ms(pick(mine, 'lateness', 'p50_ms'))} / {fmt_ms(p99)} / "
                    f"{fmt_ms(pick(mine, 'lateness', 'max_ms'))}",
                    f"{fmt_ms(pick(base, 'lateness', 'p50_ms'))} / {fmt_ms(base_p99)} / "
                    f"{fmt_ms(pick(base, 'lateness', 'max_ms'))}",
                    f"p99 {fmt_ratio(ratio(p99, base_p99))}",
                    target,
                    verdict(check) if check is not None else "",
                )
            )
            lost = [int(r.get("lost", n)) for r in mine]
            base_lost = [int(r.get("lost", n)) for r in results["aps-asyncio"]]
            lost_ok = max(lost, default=n) == 0 if n == 5000 else None
            rows.append(
                Row(
                    "fire lateness",
                    f"N={n} no-op {label}: CPU s / runs lost (max of repeats)",
                    f"{pick(mine, 'cpu_s'):.3f} s / {max(lost, default=n)}",
                    f"{pick(base, 'cpu_s'):.3f} s / {max(base_lost, default=n)}",
                    f"CPU {fmt_ratio(ratio(pick(mine, 'cpu_s'), pick(base, 'cpu_s')))}",
                    "no run lost" if n == 5000 else "",
                    verdict(lost_ok) if lost_ok is not None else "",
                )
            )
        bg = results["aps-background"]
        rows.append(
            Row(
                "fire lateness",
                f"N={n} plain BackgroundScheduler (10 threads): p50 / p99 / max, CPU, lost",
                "",
                f"{fmt_ms(pick(bg, 'lateness', 'p50_ms'))} / "
                f"{fmt_ms(pick(bg, 'lateness', 'p99_ms'))} / "
                f"{fmt_ms(pick(bg, 'lateness', 'max_ms'))}, {pick(bg, 'cpu_s'):.3f} s, "
                f"{max((int(r.get('lost', n)) for r in bg), default=n)}",
            )
        )
        for mode, found in results.items():
            for error in errors_of(found):
                rows.append(Row("fire lateness", f"N={n} {mode}: ERROR", error))


FIRST_BOUND_MS = 10.0
FLOOR_SHARE = 0.8


def scenario_command(config: Config, rows: list[Row]) -> None:
    modes = ["command", "aps-command", "aps-bg-command"]
    burst_rate = float("nan")
    for n in config.command_sizes:
        log(f"command tasks: N={n} (crontask with the SQLite store)")
        results = alternate(modes, config.fire_repeats, lateness_worker, n)
        mine = results["command"]
        base = stronger(results["aps-command"], results["aps-bg-command"])
        p50, base_p50 = pick(mine, "lateness", "p50_ms"), pick(base, "lateness", "p50_ms")
        p99, base_p99 = pick(mine, "lateness", "p99_ms"), pick(base, "lateness", "p99_ms")
        done99, base_done99 = pick(mine, "done", "p99_ms"), pick(base, "done", "p99_ms")
        first = pick(mine, "lateness", "first_ms")
        check = (
            p50 <= 0.7 * base_p50
            and p99 <= base_p99
            and done99 <= base_done99
            and first <= FIRST_BOUND_MS
        )
        rows.append(
            Row(
                "command tasks",
                f"N={n} /bin/true, SQLite store: first / p50 / p99 spawned; done p99",
                f"{fmt_ms(first)} / {fmt_ms(p50)} / {fmt_ms(p99)}; {fmt_ms(done99)}",
                f"{fmt_ms(pick(base, 'lateness', 'first_ms'))} / {fmt_ms(base_p50)} / "
                f"{fmt_ms(base_p99)}; {fmt_ms(base_done99)}",
                f"p50 {fmt_ratio(ratio(p50, base_p50))}; p99 {fmt_ratio(ratio(p99, base_p99))}; "
                f"done p99 {fmt_ratio(ratio(done99, base_done99))}",
                f"p50 <= 0.7x, p99s <= 1.0x the stronger baseline; first <= {FIRST_BOUND_MS:g} ms",
                verdict(check),
            )
        )
        rows.append(
            Row(
                "command tasks",
                f"N={n} /bin/true: CPU s incl. children / runs lost",
                f"{pick(mine, 'cpu_s'):.3f} s / {max(int(r.get('lost', n)) for r in mine)}",
                f"{pick(base, 'cpu_s'):.3f} s / {int(base[0].get('lost', n))}",
                f"CPU {fmt_ratio(ratio(pick(mine, 'cpu_s'), pick(base, 'cpu_s')))}",
            )
        )
        for mode, label in (
            ("aps-command", "plain AsyncIOScheduler + create_subprocess_exec"),
            ("aps-bg-command", "plain BackgroundScheduler (10 threads) + subprocess.run"),
        ):
            found = results[mode]
            rows.append(
                Row(
                    "command tasks",
                    f"N={n} {label}: first / p50 / p99 spawned; done p99; CPU; lost",
                    "",
                    f"{fmt_ms(pick(found, 'lateness', 'first_ms'))} / "
                    f"{fmt_ms(pick(found, 'lateness', 'p50_ms'))} / "
                    f"{fmt_ms(pick(found, 'lateness', 'p99_ms'))}; "
                    f"{fmt_ms(pick(found, 'done', 'p99_ms'))}; {pick(found, 'cpu_s'):.3f} s; "
                    f"{max((int(r.get('lost', n)) for r in found), default=n)}",
                )
            )
        rates = [
            (int(r["lateness"]["count"]) - 1)
            / ((r["lateness"]["max_ms"] - r["lateness"]["first_ms"]) / 1e3)
            for r in mine
            if "lateness" in r and r["lateness"]["max_ms"] > r["lateness"]["first_ms"]
        ]
        burst_rate = median_of(rates)
        for mode, found in results.items():
            for error in errors_of(found):
                rows.append(Row("command tasks", f"N={n} {mode}: ERROR", error))
    scenario_floor(config, rows, burst_rate, max(config.command_sizes))


def _floor_worker(mode: str, n: int) -> Json:
    return run_worker("floor_bench", [mode, str(n)], timeout=300)


def scenario_floor(config: Config, rows: list[Row], burst_rate: float, burst: int) -> None:
    n = 1000 if config.quick else 4000
    log(f"floor: {n} /bin/true started back to back, no scheduler")
    results = alternate(["processes", "threads"], config.repeats, _floor_worker, n)
    procs, threads = pick(results["processes"], "rate"), pick(results["threads"], "rate")
    floor = max(procs, threads)
    rows.append(
        Row(
            "process starts",
            f"the machine's floor: {n:,} /bin/true back to back, no scheduler: one process per "
            "core (os.posix_spawn) / crontask's Spawner threads (posix_spawn, GIL released); "
            "starts per second",
            "",
            f"{procs:,.0f}/s / {threads:,.0f}/s",
        )
    )
    share = ratio(burst_rate, floor)
    rows.append(
        Row(
            "process starts",
            f"crontask's sustained command starts per second (N={burst} same-second /bin/true, "
            "SQLite store: runs started / first-to-last spawn) against the floor",
            f"{burst_rate:,.0f}/s",
            f"{floor:,.0f}/s",
            f"{share * 100:.0f} %" if share == share else "n/a",
            f">= {FLOOR_SHARE * 100:.0f} % of the floor",
            verdict(share >= FLOOR_SHARE) if share == share else "n/a",
        )
    )
    for mode, found in results.items():
        for error in errors_of(found):
            rows.append(Row("process starts", f"floor {mode}: ERROR", error))


def _inside_worker(spec: str, n: int) -> Json:
    mode, kind = spec.split(":")
    return run_worker("inside_bench", [mode, kind, str(n)], timeout=300)


def scenario_inside(config: Config, rows: list[Row]) -> None:
    """The same start delay, seen by the command itself under the real `crontask run`."""
    sizes = [("burst", n) for n in config.command_sizes] + [("per-second", 100)]
    repeats = 1 if config.quick else 3
    for kind, n in sizes:
        log(f"inside: {kind} N={n}, `crontask run` against BackgroundScheduler + subprocess.run")
        specs = [f"crontask:{kind}", f"aps-bg:{kind}"]
        results = alternate(specs, repeats, _inside_worker, n)
        mine, base = results[specs[0]], results[specs[1]]
        first = pick(mine, "delay", "first_ms")
        p50, b50 = pick(mine, "delay", "p50_ms"), pick(base, "delay", "p50_ms")
        p99, b99 = pick(mine, "delay", "p99_ms"), pick(base, "delay", "p99_ms")
        label = f"N={n} same-second" if kind == "burst" else f"{n} per-second tasks, 7 s"
        check = p50 <= 0.7 * b50 and p99 <= b99 and first <= FIRST_BOUND_MS
        rows.append(
            Row(
                "inside the command",
                f"{label}: `date +%s.%N` - $CRONTASK_SCHEDULED_TIME in the command, "
                "`crontask run` (defaults) / BackgroundScheduler + subprocess.run: first / p50 / "
                "p99; lost",
                f"{fmt_ms(first)} / {fmt_ms(p50)} / {fmt_ms(p99)}; "
                f"{max((int(r.get('lost', 0)) for r in mine), default=0)}",
                f"{fmt_ms(pick(base, 'delay', 'first_ms'))} / {fmt_ms(b50)} / {fmt_ms(b99)}; "
                f"{max((int(r.get('lost', 0)) for r in base), default=0)}",
                f"p50 {fmt_ratio(ratio(p50, b50))}; p99 {fmt_ratio(ratio(p99, b99))}",
                f"p50 <= 0.7x, p99 <= 1.0x; first <= {FIRST_BOUND_MS:g} ms",
                verdict(check),
            )
        )
        for spec, found in results.items():
            for error in errors_of(found):
                rows.append(Row("inside the command", f"{label} {spec}: ERROR", error))


SCALE_TARGETS = {"total_s": 15.0, "rss_per_task": 6 * KIB, "resync_s": 1.0, "validate_s": 10.0}


def scenario_scale(config: Config, rows: list[Row]) -> None:
    """One instance holding many tasks (folders, 10 tasks a file), at two sizes side by side."""
    sizes = [1000, 10_000] if config.quick else [10_000, 100_000]
    big = sizes[-1]
    cold: dict[int, Json] = {}
    for n in sizes:
        log(f"scale: {n} tasks: cold start, resync, validate")
        cold[n] = run_worker("reconcile_bench", ["cold", str(n), "--validate"], timeout=1200)
    measures = (
        ("total_s", "until all scheduled (read+validate, plan+apply, start)", fmt_s, "<= 15 s"),
        ("rss_per_task", "RSS per task (loaded + scheduled)", _kib, "<= 6 KiB"),
        ("resync_s", "a resync pass that finds nothing changed", fmt_s, "<= 1 s"),
        ("validate_s", "`crontask validate` of the folder (a fresh process)", fmt_s, "<= 10 s"),
    )
    for key, label, fmt, target in measures:
        mine, base = pick([cold[big]], key), pick([cold[sizes[0]]], key)
        rows.append(
            Row(
                "one instance",
                f"{label}: {big:,} tasks in {big // 10:,} files (beside: {sizes[0]:,})",
                fmt(mine),
                fmt(base),
                f"{fmt_ratio(ratio(mine, base))} for {big // sizes[0]}x the tasks",
                target if big == 100_000 else "",
                verdict(mine <= SCALE_TARGETS[key]) if big == 100_000 else "",
            )
        )
    for n, found in cold.items():
        if "error" in found:
            rows.append(Row("one instance", f"{n:,} tasks: ERROR", str(found["error"])))
    edits = 10 if config.quick else 30
    found_edit: dict[int, Json] = {}
    for n in sizes:
        log(f"scale: {edits} edits at {n} tasks, through `crontask run`")
        found_edit[n] = run_worker("reconcile_bench", ["edit", str(n), str(edits)], timeout=1800)
    p99 = {n: pick([f], "latency", "p99_ms") for n, f in found_edit.items()}
    p50 = {n: pick([f], "latency", "p50_ms") for n, f in found_edit.items()}
    rows.append(
        Row(
            "one instance",
            f"one edited file in effect ({edits} edits, `crontask run`, watch debounce "
            f"included): p50 / p99 at {big:,} tasks (beside: {sizes[0]:,}); missed",
            f"{fmt_ms(p50[big])} / {fmt_ms(p99[big])}; {found_edit[big].get('missed')}",
            f"{fmt_ms(p50[sizes[0]])} / {fmt_ms(p99[sizes[0]])}; "
            f"{found_edit[sizes[0]].get('missed')}",
            f"p99 {fmt_ratio(ratio(p99[big], p99[sizes[0]]))}",
            "p99 <= 50 ms" if big == 100_000 else "",
            verdict(p99[big] <= 50 and found_edit[big].get("missed") == 0)
            if big == 100_000
            else "",
        )
    )
    rows.append(
        Row(
            "one instance",
            f"`crontask run` start-up to 'crontask started' at {big:,} tasks (beside: "
            f"{sizes[0]:,})",
            fmt_s(pick([found_edit[big]], "startup_s")),
            fmt_s(pick([found_edit[sizes[0]]], "startup_s")),
        )
    )
    for n, found in found_edit.items():
        if "error" in found:
            rows.append(Row("one instance", f"edit at {n:,} tasks: ERROR", str(found["error"])))
    found_git: dict[int, Json] = {}
    for n in sizes:
        log(f"scale: `crontask run --git` at {n} tasks: the clone, then a restart")
        found_git[n] = run_worker("reconcile_bench", ["git", str(n)], timeout=900)

    def restart(found: Json) -> str:
        if "error" in found:
            return f"ERROR: {found['error']}"
        return (
            f"{fmt_s(found['restart_s'])} ({found['restart_tasks']:,} tasks; "
            f"{found['read_ahead_files']:,} files read ahead); first start "
            f"{fmt_s(found['first_start_s'])}"
        )

    rows.append(
        Row(
            "one instance",
            f"`crontask run --git` restarted on the revision an earlier run left in force: to "
            f"'crontask started' at {big:,} tasks (beside: {sizes[0]:,}); the first start, "
            "clone included, until every task was added",
            restart(found_git[big]),
            restart(found_git[sizes[0]]),
        )
    )


def _kib(value: float) -> str:
    return "n/a" if value != value else f"{value / KIB:.1f} KiB"


def _job_worker(mode: str, n: int) -> Json:
    return run_worker("job_bench", [mode, str(n)], timeout=120)


def scenario_jobs(config: Config, rows: list[Row]) -> None:
    n = config.job_tasks
    log(f"job tasks: N={n}")
    results = alternate(["job", "command", "client"], config.repeats, _job_worker, n)
    mine, base, floor = results["job"], results["command"], results["client"]
    p99, base_p99 = pick(mine, "lateness", "p99_ms"), pick(base, "lateness", "p99_ms")
    rows.append(
        Row(
            "job tasks",
            f"N={n} due in the same second: slot to Job created (crontask run + API emulator) / "
            "the same tasks as command runs: slot to process started; p50 / p99; lost",
            f"{fmt_ms(pick(mine, 'lateness', 'p50_ms'))} / {fmt_ms(p99)}; "
            f"{max((int(r.get('lost', n)) for r in mine), default=n)}",
            f"{fmt_ms(pick(base, 'lateness', 'p50_ms'))} / {fmt_ms(base_p99)}; "
            f"{max((int(r.get('lost', n)) for r in base), default=n)}",
            f"p99 {fmt_ratio(ratio(p99, base_p99))}",
            "(information: the baseline is crontask's own command action)",
        )
    )
    rows.append(
        Row(
            "job tasks",
            f"N={n} Jobs created at the slot straight through the kubernetes client (8 threads, "
            "no crontask): slot to Job created p50 / p99, the floor the API server sets",
            "",
            f"{fmt_ms(pick(floor, 'lateness', 'p50_ms'))} / "
            f"{fmt_ms(pick(floor, 'lateness', 'p99_ms'))}",
            f"crontask's p99 {fmt_ratio(ratio(p99, pick(floor, 'lateness', 'p99_ms')))}",
        )
    )
    for mode, found in results.items():
        for error in errors_of(found):
            rows.append(Row("job tasks", f"N={n} {mode}: ERROR", error))


def scenario_reconcile(config: Config, rows: list[Row], cold_out: list[Json]) -> None:
    n = config.cold_tasks
    cold: list[Json] = []
    running: list[Json] = []
    for r in range(config.repeats):
        log(f"reconcile: cold start of {n} tasks (repeat {r + 1}/{config.repeats})")
        cold.append(run_worker("reconcile_bench", ["cold", str(n)], timeout=300))
        running.append(run_worker("reconcile_bench", ["cold", str(n), "--running"], timeout=300))
    cold_out.extend(cold)
    total = pick(cold, "total_s")
    scheduled = min((int(c.get("scheduled", 0)) for c in cold), default=0)
    rows.append(
        Row(
            "reconcile",
            f"cold start: {n:,} tasks in {n // 10:,} files until all scheduled "
            "(read+validate / plan+apply / start)",
            f"{fmt_s(total)} ({fmt_s(pick(cold, 'read_s'))} / {fmt_s(pick(cold, 'apply_s'))} / "
            f"{fmt_s(pick(cold, 'start_s'))}); {scheduled:,} scheduled",
            "",
            "",
            "<= 3 s" if n == 10_000 else "",
            verdict(total <= 3.0 and scheduled == n) if n == 10_000 else "",
        )
    )
    rows.append(
        Row(
            "reconcile",
            f"cold start applied to an already running scheduler: {n:,} tasks",
            f"{fmt_s(pick(running, 'total_s'))} (plan+apply {fmt_s(pick(running, 'apply_s'))})",
        )
    )
    edits: dict[int, Json] = {}
    for size in config.edit_sizes:
        log(f"reconcile: {config.edits} edits at {size} tasks, through `crontask run`")
        edits[size] = run_worker(
            "reconcile_bench", ["edit", str(size), str(config.edits)], timeout=600
        )
    smallest = min(config.edit_sizes)
    for size, found in edits.items():
        if "error" in found:
            rows.append(Row("reconcile", f"edit at {size:,} tasks: ERROR", str(found["error"])))
            continue
        p50, p99 = pick([found], "latency", "p50_ms"), pick([found], "latency", "p99_ms")
        target, check = "", None
        if size == 10_000:
            target = "p50 <= 150 ms, p99 <= 300 ms"
            check = p50 <= 150 and p99 <= 300 and int(found.get("missed", 1)) == 0
        rows.append(
            Row(
                "reconcile",
                f"one edited file in effect at {size:,} tasks ({found.get('edits')} edits, "
                "watch debounce included): p50 / p99 / max; missed",
                f"{fmt_ms(p50)} / {fmt_ms(p99)} / {fmt_ms(pick([found], 'latency', 'max_ms'))}; "
                f"{found.get('missed')}",
                "",
                "",
                target,
                verdict(check) if check is not None else "",
            )
        )
        if size != smallest and "error" not in edits[smallest]:
            base50 = pick([edits[smallest]], "latency", "p50_ms")
            base99 = pick([edits[smallest]], "latency", "p99_ms")
            growth = ratio(p50, base50)
            rows.append(
                Row(
                    "reconcile",
                    f"edit latency at {size:,} vs {smallest:,} tasks (p50; p99)",
                    f"{fmt_ms(p50)}; {fmt_ms(p99)}",
                    f"{fmt_ms(base50)}; {fmt_ms(base99)}",
                    f"{fmt_ratio(growth)}; {fmt_ratio(ratio(p99, base99))}",
                    "p50 within 1.5x",
                    verdict(growth <= 1.5),
                )
            )
        rows.append(
            Row(
                "reconcile",
                f"`crontask run` start-up to 'crontask started' at {size:,} tasks (process "
                "spawn, imports, SQLite store, first pass)",
                fmt_s(pick([found], "startup_s")),
            )
        )


def scenario_k8s(config: Config, rows: list[Row]) -> None:
    n, scenario = config.k8s_tasks, "kubernetes"
    cold: list[Json] = []
    for r in range(config.repeats):
        log(f"k8s: {n} CronTask objects to scheduled (repeat {r + 1}/{config.repeats})")
        cold.append(run_worker("k8s_bench", ["cold", str(n)], timeout=300 + n / 10))
    scheduled = min((int(c.get("scheduled", 0)) for c in cold), default=0)
    rows.append(
        Row(
            scenario,
            f"{n:,} CronTask objects in the emulator, `crontask run --kubernetes` spawned until "
            "all scheduled ('crontask started'): total (spawn+imports+connect+LIST / first "
            "pass / scheduler start)",
            f"{fmt_s(pick(cold, 'startup_s'))} ({fmt_s(pick(cold, 'listed_s'))} / "
            f"{fmt_s(pick(cold, 'pass_s'))} / {fmt_s(pick(cold, 'start_s'))}); "
            f"{scheduled:,} scheduled",
        )
    )
    for error in errors_of(cold):
        rows.append(Row(scenario, "cold start: ERROR", error))

    log(f"k8s: {config.k8s_edits} spec edits at {n} objects, through `crontask run`")
    edit = run_worker(
        "k8s_bench",
        ["edit", str(n), str(config.k8s_edits)],
        timeout=300 + n / 10 + 25 * config.k8s_edits,
    )
    if "error" in edit:
        rows.append(Row(scenario, f"edit at {n:,} objects: ERROR", str(edit["error"])))
    else:
        rows.append(
            Row(
                scenario,
                f"one edited CronTask in effect at {n:,} objects ({edit.get('edits')} "
                "spec.schedule merge PATCHes): PATCH sent to its 'task updated' line: "
                "p50 / p99 / max; missed",
                f"{fmt_ms(pick([edit], 'latency', 'p50_ms'))} / "
                f"{fmt_ms(pick([edit], 'latency', 'p99_ms'))} / "
                f"{fmt_ms(pick([edit], 'latency', 'max_ms'))}; {edit.get('missed')}",
            )
        )
        rows.append(
            Row(
                scenario,
                "  the same edits: PATCH sent to status.observedGeneration read back (GET every "
                "10 ms): p50 / p99 / max; missed",
                f"{fmt_ms(pick([edit], 'status_latency', 'p50_ms'))} / "
                f"{fmt_ms(pick([edit], 'status_latency', 'p99_ms'))} / "
                f"{fmt_ms(pick([edit], 'status_latency', 'max_ms'))}; "
                f"{edit.get('status_missed')}",
            )
        )
        rows.append(
            Row(
                scenario,
                f"  the same process: spawn to 'crontask started'; spawn to every one of the "
                f"{n:,} objects showing a Ready status (status writes limited to 20/s)",
                f"{fmt_s(pick([edit], 'startup_s'))}; {fmt_s(pick([edit], 'statuses_s'))}",
            )
        )

    runs = config.k8s_runs
    log(f"k8s: {runs} runs of an every-second task, run end to status visible")
    status = run_worker("k8s_bench", ["status", str(runs)], timeout=300 + runs)
    if "error" in status:
        rows.append(Row(scenario, "run end to status: ERROR", str(status["error"])))
    else:
        rows.append(
            Row(
                scenario,
                f"run end to status visible: one `* * * * * *` task running `true`, "
                f"{status.get('runs')} runs: run store finished_at to status.lastRun (id, "
                "completionTime) read back (GET every 10 ms): p50 / p99 / max",
                f"{fmt_ms(pick([status], 'latency', 'p50_ms'))} / "
                f"{fmt_ms(pick([status], 'latency', 'p99_ms'))} / "
                f"{fmt_ms(pick([status], 'latency', 'max_ms'))}",
            )
        )


def scenario_memory(config: Config, rows: list[Row], cold: list[Json]) -> None:
    n = config.memory_tasks
    if not cold or any("error" in c for c in cold) or int(cold[0].get("tasks", 0)) != n:
        cold = []
        for r in range(config.repeats):
            log(f"memory: {n} tasks loaded and scheduled (repeat {r + 1}/{config.repeats})")
            cold.append(run_worker("reconcile_bench", ["cold", str(n)], timeout=300))
    per_task = pick(cold, "rss_per_task")
    rows.append(
        Row(
            "memory",
            f"RSS per task at {n:,} tasks (loaded + scheduled; RSS after - before, / N)",
            f"{per_task / KIB:.1f} KiB (RSS {pick(cold, 'rss_before') / MIB:.0f} -> "
            f"{pick(cold, 'rss_after') / MIB:.0f} MiB)",
            "",
            "",
            "<= 10 KiB" if n == 10_000 else "",
            verdict(per_task <= 10 * KIB) if n == 10_000 else "",
        )
    )
    log(f"memory: {config.soak_tasks} tasks firing every second for {config.soak_seconds:.0f} s")
    soak = run_worker(
        "memory_bench",
        [str(config.soak_tasks), str(config.soak_seconds)],
        timeout=config.soak_seconds + 120,
    )
    if "error" in soak:
        rows.append(Row("memory", "RSS over a run: ERROR", str(soak["error"])))
        return
    growth = float(soak["growth"])
    rows.append(
        Row(
            "memory",
            f"RSS over {soak['seconds']:.0f} s of {soak['tasks']:,} tasks firing every second: "
            f"idle -> after {soak['warmup_s']:.0f} s warm-up -> end (max); growth after warm-up",
            f"{soak['rss_idle'] / MIB:.1f} -> {soak['rss_warm'] / MIB:.1f} -> "
            f"{soak['rss_end'] / MIB:.1f} MiB ({soak['rss_max'] / MIB:.1f}); "
            f"{growth / MIB:+.1f} MiB",
            "",
            "",
            f"growth <= {SOAK_GROWTH_BOUND / MIB:.0f} MiB",
            verdict(growth <= SOAK_GROWTH_BOUND),
        )
    )
    rows.append(
        Row(
            "memory",
            "  the same run: runs started / expected, skipped, start delay p50 / p99",
            f"{soak['runs']:,} / {soak['expected_runs']:,}, {soak['skipped']:,}, "
            f"{fmt_ms(soak['lateness_p50_ms'])} / {fmt_ms(soak['lateness_p99_ms'])}",
        )
    )


_STORE_ROW = re.compile(r"^(.+?)\s{2,}(\S.*)$")


FAILOVER_KILL_BOUND = 20.0  # lease 15 s + renew 2 s, + the next slot and a loaded machine
FAILOVER_TERM_BOUND = 3.0
SPREAD_BOUND = 1.1  # tasks per replica, max over mean


def scenario_ha(config: Config, rows: list[Row]) -> None:
    pg = config.pg or os.environ.get("CRONTASK_TEST_POSTGRES_URL")
    if not pg:
        rows.append(Row("replicas", "not run: set CRONTASK_TEST_POSTGRES_URL or pass --pg URL", ""))
        return
    repeats = 1 if config.quick else 5
    log(f"ha: failover after kill -9 and SIGTERM, {repeats} of each")
    out = run_worker("ha_bench", ["failover", "--pg", pg, "--repeats", str(repeats)], timeout=1800)
    if "error" in out:
        rows.append(Row("replicas", "failover: ERROR", str(out["error"])))
    else:
        for kind, bound, label in (
            ("kill", FAILOVER_KILL_BOUND, "kill -9"),
            ("term", FAILOVER_TERM_BOUND, "SIGTERM"),
        ):
            median = out[f"{kind}_median_s"]
            each = ", ".join(f"{v:.1f}" for v in out[f"{kind}_s"])
            rows.append(
                Row(
                    "replicas",
                    f"failover after {label}: every task of the lost replica run elsewhere, "
                    f"median of {repeats} ({each} s; {out['tasks']} per-second tasks, 3 replicas)",
                    fmt_s(median),
                    "",
                    "",
                    f"<= {bound:g} s",
                    verdict(median <= bound),
                )
            )
    per = 200 if config.quick else 10_000
    seconds = 30.0 if config.quick else 70.0
    for replicas in (1, 3):
        log(f"ha: {per * replicas} tasks over {replicas} replica(s), {seconds:g} s")
        found = run_worker(
            "ha_bench",
            ["spread", "--pg", pg, "--tasks", str(per), "--replicas", str(replicas),
             "--seconds", str(seconds)],
            timeout=1800,
        )  # fmt: skip
        if "error" in found:
            rows.append(Row("replicas", f"spread over {replicas}: ERROR", str(found["error"])))
            continue
        for i, p in enumerate(found["per_replica"]):
            rows.append(
                Row(
                    "replicas",
                    f"{found['tasks']:,} tasks (`* * * * *`, jitter 59 s, `true`) over {replicas}"
                    f": replica {i}: tasks run / start delay p50 / p99 / CPU per minute",
                    f"{p['tasks']:,} / {fmt_ms(p['delay_p50_ms'])} / {fmt_ms(p['delay_p99_ms'])}"
                    f" / {p['cpu_s_per_min']:.1f} s",
                    "",
                    "",
                    "",
                    "",
                )
            )
        if replicas > 1:
            spread = found["max_over_mean"]
            rows.append(
                Row(
                    "replicas",
                    f"{found['tasks']:,} tasks over {replicas}: tasks per replica, max / mean",
                    f"{spread:.3f}",
                    "",
                    "",
                    f"<= {SPREAD_BOUND}",
                    verdict(spread <= SPREAD_BOUND),
                )
            )


def scenario_store(config: Config, rows: list[Row]) -> None:
    targets: list[tuple[str, str | None]] = [("SQLite", None)]
    pg = config.pg or os.environ.get("CRONTASK_TEST_POSTGRES_URL")
    if pg:
        targets.append(("PostgreSQL", pg))
    reps, claims = ("20", "500") if config.quick else ("200", "2000")
    for name, url in targets:
        log(f"store: {name}, {config.store_rows:,} rows (bench/store_bench.py)")
        command = [
            PYTHON,
            str(BENCH_DIR / "store_bench.py"),
            "--rows",
            str(config.store_rows),
            "--reps",
            reps,
            "--claims",
            claims,
        ]
        if url:
            command += ["--db", url]
        try:
            done = subprocess.run(
                command,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=3600,
                check=False,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        except subprocess.TimeoutExpired:
            rows.append(Row("run store", f"{name}: ERROR", "store_bench.py timed out"))
            continue
        if done.returncode != 0:
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            rows.append(Row("run store", f"{name}: ERROR", tail))
            continue
        body = done.stdout.split("\n---", 1)[-1].split("query plans:")[0]
        for line in body.splitlines()[1:]:
            found = _STORE_ROW.match(line.strip())
            if found:
                rows.append(
                    Row(
                        "run store",
                        f"{name}, {config.store_rows:,} rows: {found.group(1)}",
                        found.group(2),
                    )
                )
    if not pg:
        rows.append(
            Row(
                "run store",
                "PostgreSQL",
                "not run: set CRONTASK_TEST_POSTGRES_URL or pass --pg URL",
            )
        )


FLOOD_PEAK_BOUND = 64 * MIB
FLOOD_AFTER_BOUND = 32 * MIB


def scenario_api(config: Config, rows: list[Row]) -> None:
    requests, concurrency, settle = (400, 100, 5) if config.quick else (8000, 1000, 60)
    log(f"api: {requests} GET /api/v1/tasks, {concurrency} at once, then {settle} s idle")
    flood = run_worker(
        "api_bench", ["flood", str(requests), str(concurrency), str(settle)], timeout=900
    )
    if "error" in flood:
        rows.append(Row("api", "flood: ERROR", str(flood["error"])))
    else:
        before = flood["rss_before_mb"]
        after = flood["rss_after_mb"][f"{settle:g}s"]
        peak_ok = (flood["rss_peak_mb"] - before) * MIB <= FLOOD_PEAK_BOUND
        after_ok = (after - before) * MIB <= FLOOD_AFTER_BOUND
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(flood["statuses"].items()))
        rows.append(
            Row(
                "api",
                f"RSS under {requests:,} GET /api/v1/tasks (100 tasks), {concurrency:,} at "
                f"once: before / peak / {settle:g} s after ({statuses}; "
                f"{flood['flood_seconds']:.0f} s)",
                f"{before:.0f} / {flood['rss_peak_mb']:.0f} / {after:.0f} MiB",
                "",
                "",
                f"peak +{FLOOD_PEAK_BOUND // MIB} MiB, after +{FLOOD_AFTER_BOUND // MIB} MiB",
                verdict(peak_ok and after_ok and flood["alive"]),
            )
        )
    tasks = 1000 if config.quick else 10_000
    log(f"api: listing {tasks} tasks")
    listed = run_worker("api_bench", ["list", str(tasks)], timeout=900)
    if "error" in listed:
        rows.append(Row("api", "list: ERROR", str(listed["error"])))
        return
    rows.append(
        Row(
            "api",
            f"list {tasks:,} tasks: `crontask tasks --json` (whole list, {listed['pages']} "
            f"pages) / each page of 500: p50 / p99 / all pages / as pages of 5 000",
            f"{fmt_s(listed['cli_seconds'])} / {fmt_ms(listed['page']['p50_ms'])} / "
            f"{fmt_ms(listed['page']['p99_ms'])} / {fmt_s(listed['pages_total_seconds'])} / "
            f"{fmt_s(listed['big_total_seconds'])}",
            "",
            "",
            "every task listed once",
            verdict(listed["cli_items"] == listed["page_items"] == tasks),
        )
    )


PAGE_BOUND = 1.0  # seconds for one read over the whole history, on a machine like CI's


def scenario_page(config: Config, rows: list[Row]) -> None:
    tasks, records, reps = (200, 50, 3) if config.quick else (1000, 500, 10)
    log(f"page: {tasks} tasks x {records} runs in the store, reads over HTTP")
    found = run_worker("page_bench", [str(tasks), str(records), str(reps)], timeout=1800)
    if "error" in found:
        rows.append(Row("page", "ERROR", str(found["error"])))
        return
    history = f"{tasks:,} tasks x {records:,} runs"
    reads = [
        ("first /metrics scrape", [found["first_scrape_s"]]),
        ("/?state=failing (the status page's filter): p50 / max", found["page_failing_s"]),
        ("GET /api/v1/runs?trigger=manual&limit=50: p50 / max", found["manual_runs_s"]),
    ]
    for label, samples in reads:
        shown = " / ".join(
            fmt_ms(v * 1e3) for v in dict.fromkeys([median_of(samples), max(samples)])
        )
        rows.append(
            Row(
                "page",
                f"{history}: {label}",
                shown,
                "",
                "",
                f"<= {PAGE_BOUND:g} s",
                verdict(max(samples) <= PAGE_BOUND and found["statuses"] == [200]),
            )
        )


def _hostile_read(case: str, mode: str, _: int) -> Json:
    return run_worker("hostile_bench", ["read", case, mode], timeout=120)


def scenario_hostile(config: Config, rows: list[Row]) -> None:
    cases = {
        "alias-bomb-sequences.yaml": "alias bomb (9 anchors of 9 sequences)",
        "alias-bomb-merge-keys.yaml": "alias bomb of merge keys",
        "many-values.yaml": "1 MiB of one-character values",
    }
    for case, label in cases.items():
        log(f"hostile: reading {case}")
        results = alternate(
            ["crontask", "pyyaml"],
            config.repeats,
            functools.partial(_hostile_read, case),
            0,
        )
        mine, base = results["crontask"], results["pyyaml"]
        for mode, found in results.items():
            for error in errors_of(found):
                rows.append(Row("hostile input", f"{label} ({mode}): ERROR", error))
        wall, extra = pick(mine, "wall_s"), pick(mine, "peak_extra")
        bomb = case.startswith("alias-")
        rows.append(
            Row(
                "hostile input",
                f"{label}, {int(pick(mine, 'bytes')):,} bytes: read + YAML + validation "
                "(DirectorySource.refresh) / yaml.load(CSafeLoader): time; peak RSS added",
                f"{fmt_ms(wall * 1e3)}; {extra / MIB:.1f} MiB",
                f"{fmt_ms(pick(base, 'wall_s') * 1e3)}; {pick(base, 'peak_extra') / MIB:.1f} MiB",
                fmt_ratio(ratio(wall, pick(base, "wall_s"))),
                "< 1 s, < 50 MiB (an error at file:line:col)" if bomb else "",
                verdict(wall < 1.0 and extra < 50 * MIB) if bomb else "",
            )
        )
    log("hostile: crontask validate on the alias bomb")
    runs = [
        run_worker("hostile_bench", ["validate", "alias-bomb-sequences.yaml"], timeout=120)
        for _ in range(config.repeats)
    ]
    for error in errors_of(runs):
        rows.append(Row("hostile input", "validate: ERROR", error))
    extra = pick(runs, "hostile", "peak_rss") - pick(runs, "good", "peak_rss")
    rows.append(
        Row(
            "hostile input",
            "`crontask validate` (a subprocess) on the alias bomb / on one good task: "
            "wall; CPU; peak RSS",
            f"{fmt_s(pick(runs, 'hostile', 'wall_s'))}; {fmt_s(pick(runs, 'hostile', 'cpu_s'))}; "
            f"{pick(runs, 'hostile', 'peak_rss') / MIB:.1f} MiB",
            f"{fmt_s(pick(runs, 'good', 'wall_s'))}; {fmt_s(pick(runs, 'good', 'cpu_s'))}; "
            f"{pick(runs, 'good', 'peak_rss') / MIB:.1f} MiB",
            f"{extra / MIB:+.1f} MiB",
            "< 50 MiB more",
            verdict(extra < 50 * MIB),
        )
    )


BASELINE_SCRAPES = 20  # an earlier commit's scrapes took seconds each


def metrics_worker(config: Config, code: Path | None = None, *extra: str) -> Json:
    windows = 0 if extra else config.metrics_windows  # the flag's run: size and time only
    scrapes = (
        config.metrics_scrapes if code is None else min(config.metrics_scrapes, BASELINE_SCRAPES)
    )
    args = [
        str(config.metrics_tasks),
        "--scrapes",
        str(scrapes),
        "--window",
        str(config.metrics_window),
        "--windows",
        str(windows),
    ]
    if code is not None:
        args += ["--code", str(code)]
    if not extra:
        args.append("--restart")
    args += [f"--run-arg={arg}" for arg in extra]
    # Start-up (twice with --restart), the run phase (250 slots a second), scrapes (up to 15 s
    # each before the rewrite), the windows, and the margin a loaded machine needs.
    budget = 180 + config.metrics_tasks / 25 + 2 * scrapes * 15 + windows * config.metrics_window
    return run_worker("metrics_bench", args, timeout=budget)


def _bytes(value: float) -> str:
    """Decimal units, as issue 12 measured (22.8 MB)."""
    if value != value:
        return "n/a"
    return f"{value / 1e6:,.2f} MB" if value >= 1e6 else f"{value / 1e3:,.0f} kB"


def _metrics_figures(found: Json) -> dict[str, str]:
    if "error" in found:
        error = str(found["error"])
        return dict.fromkeys(("size", "text", "junk", "scrape", "plain", "delay", "restart"), error)
    delay = found.get("delay", {})
    again = found.get("restart", {})
    restart = str(again.get("error", ""))
    if again and not restart:
        restart = (
            f"{fmt_ms(again['first_scrape_ms'])} / {fmt_ms(again['second_scrape_ms'])}; "
            f"{again['tasks_with_outcomes']:,} of {found['tasks']:,}"
        )

    def window(kind: str) -> str:
        d = delay.get(kind, {})
        return (
            f"{fmt_ms(d.get('p50_ms', float('nan')))} / {fmt_ms(d.get('p99_ms', float('nan')))}"
            f" / {fmt_ms(d.get('max_ms', float('nan')))} ({d.get('skipped', 'n/a')} skipped)"
        )

    low, high = found.get("samples_per_task_min"), found.get("samples_per_task_max")
    per_task = f"{low}" if low == high else f"{low}-{high}"
    return {
        "size": _bytes(float(found["gzip_bytes"])),
        "text": f"{_bytes(float(found['body_bytes']))}; {found['samples']:,} ({per_task} per task)",
        "junk": f"{found['created']:,}; {found['task_buckets']:,}",
        "scrape": " / ".join(
            fmt_ms(found["scrape_gzip"][k]) for k in ("p50_ms", "p99_ms", "max_ms")
        ),
        "plain": " / ".join(
            fmt_ms(found["scrape_plain"][k]) for k in ("p50_ms", "p99_ms", "max_ms")
        ),
        "delay": f"not scraped {window('unscraped')}; scraped {window('scraped')}",
        "restart": restart,
    }


def _export(ref: str) -> Path:
    """``ref`` of this repository, as a source tree in a temporary folder."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
    archive = subprocess.run(
        ["git", "archive", ref], cwd=ROOT, capture_output=True, check=True, timeout=60
    )
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def scenario_metrics(config: Config, rows: list[Row]) -> None:
    n, scenario = config.metrics_tasks, "metrics"
    log(f"metrics: /metrics at {n} tasks, scraped and not (bench/metrics_bench.py)")
    mine = metrics_worker(config)
    log(f"metrics: {json.dumps(mine)}")
    base: Json = {}
    if config.metrics_baseline:
        log(f"metrics: the same at {config.metrics_baseline} ({BASELINE_SCRAPES} scrapes)")
        base = metrics_worker(config, _export(config.metrics_baseline))
        log(f"metrics: {json.dumps(base)}")
    m, b = _metrics_figures(mine), _metrics_figures(base) if base else {}
    before = f"{config.metrics_baseline}: " if base else ""

    def pair(key: str) -> tuple[str, str]:
        return m[key], (before + b[key]) if b else ""

    ok = "error" not in mine
    rows.append(
        Row(
            scenario,
            f"/metrics at {n:,} tasks (each failed once and succeeded once): bytes as Prometheus "
            "fetches them (Accept-Encoding: gzip)",
            *pair("size"),
            "",
            "<= 3 MB" if n == 10_000 else "",
            verdict(ok and float(mine["gzip_bytes"]) <= 3e6) if n == 10_000 else "",
        )
    )
    rows.append(Row(scenario, "  the same, decoded: text; samples (per task)", *pair("text")))
    rows.append(
        Row(
            scenario,
            "  _created samples; histogram buckets with a task label",
            *pair("junk"),
            "",
            "none",
            verdict(ok and mine["created"] == 0 and mine["task_buckets"] == 0),
        )
    )
    p99 = float(mine["scrape_gzip"]["p99_ms"]) if ok else float("nan")
    rows.append(
        Row(
            scenario,
            f"  scrape, gzip, {config.metrics_scrapes} one after another, each a render (over 1 s "
            "apart: request sent to last byte read): p50 / p99 / max",
            *pair("scrape"),
            "",
            "p99 <= 300 ms" if n == 10_000 else "",
            verdict(p99 <= 300) if n == 10_000 else "",
        )
    )
    rows.append(Row(scenario, "  scrape without gzip: p50 / p99 / max", *pair("plain")))
    delta = float("nan")
    if ok:
        delay = mine["delay"]
        delta = float(delay["scraped"]["p99_ms"]) - float(delay["unscraped"]["p99_ms"])
    rows.append(
        Row(
            scenario,
            f"  start delay of {mine.get('per_second', '?')} per-second tasks in "
            f"{config.metrics_windows} alternating {config.metrics_window:.0f} s windows, not "
            "scraped / scraped every second: p50 / p99 / max (skipped runs)",
            *pair("delay"),
            f"p99 {delta:+.1f} ms" if delta == delta else "",
            "scraped p99 <= not scraped + 20 ms",
            verdict(delta <= 20) if delta == delta else verdict(False),
        )
    )
    outcomes = mine.get("restart", {}).get("tasks_with_outcomes") if ok else None
    rows.append(
        Row(
            scenario,
            "  after a restart on the same run store: first scrape (each task's last success, "
            "last failure and last duration read from the history) / the next, gzip; tasks "
            "whose first scrape has all three",
            *pair("restart"),
            "",
            "every task",
            verdict(outcomes == n),
        )
    )
    log(f"metrics: /metrics at {n} tasks with --metrics-per-task-histograms")
    flag = _metrics_figures(metrics_worker(config, None, "--metrics-per-task-histograms"))
    rows.append(
        Row(
            scenario,
            "  with --metrics-per-task-histograms: gzip bytes; text, samples (per task); "
            "scrape gzip p50 / p99 / max",
            f"{flag['size']}; {flag['text']}; {flag['scrape']}",
        )
    )


# -- output ----------------------------------------------------------------------------------

HEADER = ("scenario", "measure", "crontask", "APScheduler baseline", "ratio", "target", "result")


def table(rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in rows:
        cells = [
            row.scenario,
            row.measure,
            row.crontask,
            row.baseline,
            row.ratio,
            row.target,
            f"**{row.result}**" if row.result in ("PASS", "FAIL") else row.result,
        ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


NOTES = """\
## How to read this

- Every figure above was measured in this run; nothing is copied from earlier runs. Each
  measurement ran in a fresh Python process; repeated ones were alternated between crontask
  and the baseline (ABC, CBA, ...) and the table shows the median of the repeats. Fire
  lateness and command tasks are repeated more often (see "sizes" above): each repeat takes
  seconds, and a single one varies by about a fifth on this machine, more than the margins
  the targets leave.
- The machine has 2 cores and was shared with other work while this ran, so the figures are
  noisy (see the load average above): compare ratios from the same run rather than absolute
  figures across runs.
- Fire lateness = the instant a run starts minus its slot. For "(a) hand-off alone" the start
  is the call of crontask's fire callback on the event loop, and it is timed against the
  instant the scheduler means to call it: crontask hands a slot over ahead of it, by 50 ms
  plus 1 ms per task due with it (at most 1 s). For "(b) through the dispatcher"
  it is when the run's attempt begins, i.e. where a process would be spawned: after the
  concurrency and deadline policies, the run record, and the store's acceptance of the claim
  (a MemoryRunStore, through the recorder's thread pool), with `crontask run`'s log lines,
  and never before the slot (a run decided ahead of it waits for it).
  The action is a bench-local no-op Attempt, because any real action (a fork, an HTTP
  request) would measure that action rather than crontask. The APScheduler baseline is plain
  AsyncIOScheduler (its CronTrigger, default job settings: misfire_grace_time=1) with an
  `async def` job that notes the time: the same one-loop process layout as crontask. The
  crontask modes call `gc.freeze()` once their jobs are set up, as `crontask run` does after
  its first pass; log lines go through `crontask run`'s handler to stderr (a pipe the harness
  reads and drops unless the worker fails).
- Command tasks: "spawned" is when the child process exists (for crontask, the instant its
  spawner thread's `posix_spawn` returned; for the baselines, when `create_subprocess_exec` or
  `Popen` returned), "ended" when the run is over (crontask: its final record is written in
  the SQLite store; baselines: the child is reaped and its output read). Ratios are against
  the stronger of the two baselines, figure by figure: AsyncIOScheduler +
  `create_subprocess_exec` (asyncio's PidfdChildWatcher) and BackgroundScheduler (10 threads)
  + `subprocess.run`.
  Each side's command gets its default environment: crontask's minimal one (`--task-env`
  minimal: PATH, HOME, locale and the like, plus the run's CRONTASK_* variables), the
  baseline's the whole inherited environment (`env=None`, which subprocess need not encode).
- Runs lost: runs that had not started 15 s after their slot (plain APScheduler drops a slot
  that is later than misfire_grace_time; crontask never drops one, it records a skip).
- Cold start: DirectorySource refresh (YAML with positions, validation) and assemble, plan,
  ApsScheduler.apply of every task with its "task added" log line, and ApsScheduler.start(),
  in `crontask run`'s order; the task tree has 10 CronTasks per multi-document file, each with
  a distinct yearly cron slot in one of five time zones (no two schedules alike: no cache
  helps).
- Edited file in effect: the real `crontask run` process; the time from just before the file
  is written to the `time=` of its `task updated` log line.
- Kubernetes: the project's API emulator (`tests/k8s/emulator`, in the benchmark's process,
  with TCP_NODELAY set on its connections like a real API server; its default adds ~40 ms to
  every keep-alive response) and the real `crontask run --kubernetes` as a subprocess.
  Objects are written with plain HTTP; "in effect" is the `time=` of crontask's log line minus
  the instant just before the write (log times have millisecond resolution). Status figures
  are read back with GET every 10 ms, so they include up to 10 ms of polling; a run's end is
  its `finished_at` in the run store.
- Job tasks: N `job` tasks and, as the comparison, the same N tasks as `command` runs of
  `/bin/date +%s.%N`, all due in one second, through the real `crontask run DIR --kubeconfig`
  against the API emulator (in the benchmark's process; it stores the Jobs but does not run
  them). A Job's latency is when the benchmark's own watch of the Jobs received its ADDED event
  minus the slot; a command's is the instant `date` printed minus the slot. Each is the moment
  the work is handed to what runs it: the cluster, or a process. The floor row creates the same
  N Jobs at the slot from a plain script (the official client, a pool of 8 threads as the job
  action has): what the API server and the client cost, with no scheduling at all.
- Metrics: the real `crontask run` (SQLite store) on N tasks with one slot each in the first
  minute after start-up; each task's first attempt fails and its retry succeeds, so each has
  the series of a task in steady state (a success, a failure, a duration) before anything is
  measured. Scrapes are timed by the client over one keep-alive connection, as Prometheus
  keeps one per target. The start delay is `started_at - scheduled_at` of the per-second
  tasks' runs in the run store (when the run's process started), in
  alternating windows without and with a scrape every second. An earlier commit measured with
  `--metrics-baseline REF` is scraped 20 times per encoding (its scrapes took seconds each).
- Hostile input: "read" is `DirectorySource.refresh()` of a folder holding the one file (what
  `crontask run` and `validate` do with it: the read, the YAML and its bounds, validation),
  in a fresh process; the baseline is PyYAML's `yaml.load(..., Loader=CSafeLoader)` of the
  same file, which builds no CronTask and shares what aliases repeat (the walks that come
  after it are what an alias bomb blows up). Peak RSS added is `ru_maxrss` after minus before.
- RSS over a run: the real Dispatcher with a no-op attempt and a MemoryRunStore pruned every
  10 s to the default history limits (what `crontask run`'s housekeeping does), so the
  history does not count; the bound on growth after warm-up is stated in the target column.
"""


def document(config: Config, facts: Json, rows: Sequence[Row], elapsed: float) -> str:
    mode = "quick" if config.quick else "full"
    return (
        "# crontask benchmark results\n\n"
        f"Generated by `python bench/run.py{' --quick' if config.quick else ''}` "
        f"({mode} mode, {elapsed / 60:.1f} minutes) on {facts['date']}, commit "
        f"`{facts['commit']}`.\n\n"
        f"- CPU: {facts['cpu']}, {facts['cores']} cores; memory {facts['memory']}\n"
        f"- Python {facts['python']}, APScheduler {facts['apscheduler']}; {facts['platform']}\n"
        f"- load average at the start: {facts['load']}; at the end: "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}\n"
        f"- sizes: lateness N={config.sizes}, command N={config.command_sizes}, "
        f"repeats={config.repeats} (fire lateness and command tasks: {config.fire_repeats}), "
        f"cold start {config.cold_tasks:,} tasks, edits "
        f"{config.edits} at {config.edit_sizes} tasks, soak {config.soak_tasks:,} tasks for "
        f"{config.soak_seconds:.0f} s, k8s {config.k8s_tasks:,} objects, "
        f"{config.k8s_edits} edits, {config.k8s_runs} runs, job tasks {config.job_tasks}, "
        f"store {config.store_rows:,} rows, "
        f"metrics {config.metrics_tasks:,} tasks, {config.metrics_scrapes} scrapes, "
        f"{config.metrics_windows} windows of {config.metrics_window:.0f} s\n\n"
        + table(rows)
        + "\n\n"
        + NOTES
        + analysis()
    )


ANALYSIS_FILE = BENCH_DIR / "ANALYSIS.md"  # what the numbers mean, kept by hand


def analysis() -> str:
    return "\n" + ANALYSIS_FILE.read_text() if ANALYSIS_FILE.exists() else ""


def parse_args(argv: Sequence[str] | None) -> tuple[Config, list[str], Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, about 6 minutes (what CI runs)"
    )
    parser.add_argument(
        "--only", help=f"comma-separated scenarios to run (default: all of {','.join(SCENARIOS)})"
    )
    parser.add_argument("--sizes", help="lateness N values, e.g. 100,1000,5000")
    parser.add_argument("--command-sizes", help="command task N values, e.g. 100,1000")
    parser.add_argument("--repeats", type=int, help="repeats per measurement (median reported)")
    parser.add_argument(
        "--fire-repeats", type=int, help="repeats of the fire lateness and command measurements"
    )
    parser.add_argument("--cold-tasks", type=int, help="tasks for the cold start (10 per file)")
    parser.add_argument("--edit-sizes", help="task counts for the edit latency, e.g. 1000,10000")
    parser.add_argument("--edits", type=int, help="edits per size")
    parser.add_argument("--soak-seconds", type=float, help="length of the RSS-over-time run")
    parser.add_argument("--soak-tasks", type=int, help="tasks firing every second in it")
    parser.add_argument("--k8s-tasks", type=int, help="CronTask objects in the k8s scenario")
    parser.add_argument("--k8s-edits", type=int, help="spec edits in the k8s scenario")
    parser.add_argument("--k8s-runs", type=int, help="runs timed from end to status")
    parser.add_argument("--job-tasks", type=int, help="job tasks due in the same second")
    parser.add_argument("--store-rows", type=int, help="rows for bench/store_bench.py")
    parser.add_argument("--pg", metavar="URL", help="also benchmark PostgreSQL at URL")
    parser.add_argument("--metrics-tasks", type=int, help="tasks in the metrics scenario")
    parser.add_argument(
        "--metrics-baseline",
        metavar="REF",
        help="also run the metrics scenario on this commit (e.g. main), for before and after",
    )
    parser.add_argument("--output", type=Path, help="where to write the results (Markdown)")
    args = parser.parse_args(argv)

    def ints(text: str | None, default: list[int]) -> list[int]:
        return [int(x) for x in text.split(",")] if text else default

    quick = bool(args.quick)
    config = Config(
        quick=quick,
        sizes=ints(args.sizes, [100] if quick else [100, 1000, 5000]),
        command_sizes=ints(args.command_sizes, [50] if quick else [100, 1000]),
        repeats=args.repeats or (1 if quick else 5),
        fire_repeats=args.fire_repeats or args.repeats or (1 if quick else 9),
        cold_tasks=args.cold_tasks or (1000 if quick else 10_000),
        edit_sizes=ints(args.edit_sizes, [200] if quick else [1000, 10_000]),
        edits=args.edits or (5 if quick else 50),
        soak_tasks=args.soak_tasks or 1000,
        soak_seconds=args.soak_seconds or (12.0 if quick else 600.0),
        memory_tasks=args.cold_tasks or (1000 if quick else 10_000),
        k8s_tasks=args.k8s_tasks or (100 if quick else 1000),
        k8s_edits=args.k8s_edits or (10 if quick else 30),
        k8s_runs=args.k8s_runs or (5 if quick else 20),
        job_tasks=args.job_tasks or 100,
        store_rows=args.store_rows or (20_000 if quick else 1_000_000),
        pg=args.pg,
        metrics_tasks=args.metrics_tasks or (1000 if quick else 10_000),
        metrics_scrapes=10 if quick else 100,
        metrics_window=10.0 if quick else 30.0,
        metrics_windows=2 if quick else 6,
        metrics_baseline=args.metrics_baseline,
    )
    only = [s.strip() for s in args.only.split(",")] if args.only else list(SCENARIOS)
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    output = args.output or BENCH_DIR / ("RESULTS-quick.md" if quick else "RESULTS.md")
    return config, only, output


def main(argv: Sequence[str] | None = None) -> int:
    config, only, output = parse_args(argv)
    began = time.monotonic()
    facts = machine()
    log(f"crontask benchmarks ({'quick' if config.quick else 'full'}): {', '.join(only)}")
    rows: list[Row] = []
    cold: list[Json] = []
    if "lateness" in only:
        scenario_lateness(config, rows)
    if "command" in only:
        scenario_command(config, rows)
    if "inside" in only:
        scenario_inside(config, rows)
    if "scale" in only:
        scenario_scale(config, rows)
    if "jobs" in only:
        scenario_jobs(config, rows)
    if "reconcile" in only:
        scenario_reconcile(config, rows, cold)
    if "k8s" in only:
        scenario_k8s(config, rows)
    if "memory" in only:
        scenario_memory(config, rows, cold)
    if "store" in only:
        scenario_store(config, rows)
    if "metrics" in only:
        scenario_metrics(config, rows)
    if "ha" in only:
        scenario_ha(config, rows)
    if "hostile" in only:
        scenario_hostile(config, rows)
    if "api" in only:
        scenario_api(config, rows)
    if "page" in only:
        scenario_page(config, rows)
    elapsed = time.monotonic() - began
    print(table(rows))
    output.write_text(document(config, facts, rows, elapsed))
    log(f"done in {elapsed:.0f} s; written to {output}")
    failed = [r for r in rows if r.measure.endswith("ERROR")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
