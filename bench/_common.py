"""Helpers shared by the benchmark scenarios: statistics, RSS, machine facts, task trees.

Every scenario module can run as a worker (``python bench/<module>.py --worker ...``) that
prints one JSON object on its last stdout line; ``run_worker`` starts such a worker in a fresh
interpreter, so measurements never share a process.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
PYTHON = sys.executable

Json = dict[str, Any]


def asyncio_pidfd_watcher(loop: asyncio.AbstractEventLoop) -> None:
    """The cheapest way asyncio has on 3.11 to wait for children: the loop watches pidfds
    (its default parks a thread per child; 3.12+ uses pidfds by itself and deprecates this)."""
    if sys.version_info < (3, 12) and hasattr(os, "pidfd_open"):
        watcher = asyncio.PidfdChildWatcher()
        watcher.attach_loop(loop)
        asyncio.set_child_watcher(watcher)


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 1]); NaN for no samples."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def summary_ms(samples: Sequence[float]) -> Json:
    """first (min)/p50/p99/max of samples given in seconds, in milliseconds."""
    return {
        "first_ms": (min(samples) * 1e3) if samples else float("nan"),
        "p50_ms": percentile(samples, 0.50) * 1e3,
        "p99_ms": percentile(samples, 0.99) * 1e3,
        "max_ms": (max(samples) * 1e3) if samples else float("nan"),
        "count": len(samples),
    }


def median_of(values: Sequence[float]) -> float:
    clean = [v for v in values if v == v]  # drop NaN
    return statistics.median(clean) if clean else float("nan")


def rss_bytes() -> int:
    """Resident set size of this process (VmRSS)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def emit(result: Json) -> None:
    """A worker's answer: one JSON line, the last on stdout."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def run_worker(module: str, args: Sequence[str], *, timeout: float) -> Json:
    """Run ``bench/<module>.py --worker ARGS`` in a fresh interpreter; its JSON answer.

    A failure (non-zero exit, timeout, no JSON) becomes ``{"error": ...}`` so that one broken
    scenario does not hide the others.
    """
    command = [PYTHON, str(BENCH_DIR / f"{module}.py"), "--worker", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s: {' '.join(args)}"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        return {"error": f"exit {done.returncode}: " + " | ".join(tail)}
    answer: Json = json.loads(lines[-1])
    return answer


def machine() -> Json:
    """CPU model, cores, memory, versions, date and commit."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "unknown", ""
    import apscheduler

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "python": platform.python_version(),
        "apscheduler": apscheduler.__version__,
        "platform": platform.platform(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": (commit or "unknown") + (" (with uncommitted changes)" if dirty else ""),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


# -- task trees ------------------------------------------------------------------------------

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe")


def quiet_schedule(rnd: random.Random, now: datetime | None = None) -> str:
    """A yearly slot in a month at least two months away: never fires during a benchmark, yet
    exercises the cron engine like any 5-field expression (month and day search, zones)."""
    month = (now or datetime.now(UTC)).month
    choices = [m for m in range(1, 13) if (m - month) % 12 not in (0, 1, 11)]
    return f"{rnd.randrange(60)} {rnd.randrange(24)} {rnd.randrange(1, 29)} {rnd.choice(choices)} *"


def task_document(name: str, schedule: str, zone: str, namespace: str = "bench") -> str:
    return (
        "apiVersion: crontask.dev/v1alpha1\n"
        "kind: CronTask\n"
        "metadata:\n"
        f"  name: {name}\n"
        f"  namespace: {namespace}\n"
        "spec:\n"
        f'  schedule: "{schedule}"\n'
        f"  timeZone: {zone}\n"
        "  timeoutSeconds: 600\n"
        "  retry: {limit: 1, backoffSeconds: 5}\n"
        "  command:\n"
        '    args: ["true", "--task", "' + name + '"]\n'
        "    env: {STAGE: bench}\n"
    )


def write_tree(root: Path, files: int, per_file: int, seed: int = 7) -> list[Path]:
    """``files`` multi-document YAML files of ``per_file`` CronTasks each, in 10 folders."""
    rnd = random.Random(seed)
    paths: list[Path] = []
    for f in range(files):
        folder = root / f"team-{f % 10:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        docs = []
        for t in range(per_file):
            name = f"task-{f:04d}-{t:02d}"
            docs.append(task_document(name, quiet_schedule(rnd), ZONES[(f + t) % len(ZONES)]))
        path = folder / f"tasks-{f:04d}.yaml"
        path.write_text("---\n".join(docs))
        paths.append(path)
    return paths


def wait_until(deadline: float) -> None:
    """Sleep until ``time.time()`` reaches ``deadline``."""
    while (left := deadline - time.time()) > 0:
        time.sleep(min(left, 0.5))


def start_crontask(args: Sequence[str], *, code: Path = ROOT) -> subprocess.Popen[str]:
    """The real ``crontask run ARGS``, from the tree at ``code``; its log (stderr) is piped,
    as text, for the caller's reader."""
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "run", *args],
        cwd=code,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(code)},
    )


def stop_crontask(process: subprocess.Popen[str], timeout: float) -> None:
    """SIGTERM, as a deployment stops it; SIGKILL if it has not exited within ``timeout``."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
