"""The API under load: memory through a flood of parallel GETs, and listing 10 000 tasks.

    python bench/api_bench.py --worker flood REQUESTS CONCURRENCY SETTLE [--path P] [--tasks N]
    python bench/api_bench.py --worker list TASKS

``flood``: the real ``crontask run`` (SQLite state in a temporary folder, N ``@yearly``-like
tasks that never fire during the run) on 127.0.0.1. Its RSS is read from
``/proc/PID/status``: before (2 s after "crontask started"), every 0.1 s during a flood of
REQUESTS ``GET``\\ s (default ``/api/v1/tasks``) sent by CONCURRENCY connections at once
(each request its own connection, ``Connection: close``, as a crowd of clients would), and
SETTLE seconds after the last answer. Every request has a 60 s timeout and the flood at most
600 s, so the run always ends. Reports the statuses seen (a bounded server may answer 503).

``list``: the same program with TASKS tasks (10 per file); the whole list through the CLI
(``crontask tasks --json --server ...``, a fresh process, pages of 500 followed with
``continue``), and each page alone over one HTTP connection (p50/p99 of the page times), and
the list as pages of 5 000 (the API's largest) for comparison.

``--pythonpath DIR`` runs the server from another checkout (for before/after numbers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, Json, emit, summary_ms, write_tree

START_TIMEOUT = 300.0
REQUEST_TIMEOUT = 60.0
FLOOD_TIMEOUT = 600.0
MIB = 1024 * 1024


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def rss_of(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class Server:
    """``crontask run`` on a folder, in a subprocess; its log kept in memory."""

    def __init__(self, tasks_dir: Path, state: Path, pythonpath: str | None) -> None:
        self.port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = pythonpath or str(ROOT)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler",
                "run",
                str(tasks_dir),
                "--state-dir",
                str(state),
                "--listen",
                f"127.0.0.1:{self.port}",
                "--log-level",
                "warning",
            ],
            cwd=state.parent,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"crontask exited with {self.process.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("crontask did not become ready")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


# -- flood -----------------------------------------------------------------------------------


async def _get(port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        data = await reader.read()
        return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    finally:
        writer.close()


async def _flood(port: int, pid: int, requests: int, concurrency: int, path: str) -> Json:
    statuses: Counter[str] = Counter()
    samples: list[int] = []
    left = requests
    done = asyncio.Event()

    async def client() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            try:
                status = await asyncio.wait_for(_get(port, path), REQUEST_TIMEOUT)
                statuses[str(status)] += 1
            except (OSError, TimeoutError) as exc:
                statuses[type(exc).__name__] += 1

    async def sample() -> None:
        while not done.is_set():
            samples.append(rss_of(pid))
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample())
    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(client() for _ in range(concurrency))), FLOOD_TIMEOUT)
    elapsed = time.perf_counter() - started
    done.set()
    await sampler
    samples.append(rss_of(pid))
    return {"peak": max(samples), "seconds": elapsed, "statuses": dict(statuses)}


def flood(args: argparse.Namespace) -> Json:
    with tempfile.TemporaryDirectory(prefix="crontask-flood-") as tmp:
        root = Path(tmp)
        tasks_dir = root / "tasks"
        write_tree(tasks_dir, max(1, args.tasks // 10), min(10, args.tasks))
        server = Server(tasks_dir, root / "state", args.pythonpath)
        try:
            server.wait_ready()
            pid = server.process.pid
            time.sleep(2.0)
            before = rss_of(pid)
            during = asyncio.run(
                _flood(server.port, pid, args.requests, args.concurrency, args.path)
            )
            after: dict[str, int] = {}
            settle_start = time.monotonic()
            for mark in sorted({5.0, args.settle / 2, args.settle}):
                time.sleep(max(0.0, settle_start + mark - time.monotonic()))
                after[f"{mark:g}s"] = rss_of(pid)
            alive = server.process.poll() is None
        finally:
            server.stop()
    return {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "path": args.path,
        "rss_before_mb": before / MIB,
        "rss_peak_mb": during["peak"] / MIB,
        "rss_after_mb": {k: v / MIB for k, v in after.items()},
        "flood_seconds": during["seconds"],
        "statuses": during["statuses"],
        "alive": alive,
    }


# -- list ------------------------------------------------------------------------------------


def _pages(port: int, limit: int) -> tuple[list[float], int]:
    import httpx

    times: list[float] = []
    items = 0
    token = None
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        while True:
            params = {"limit": str(limit), **({"continue": token} if token else {})}
            started = time.perf_counter()
            body = client.get("/api/v1/tasks", params=params).json()
            times.append(time.perf_counter() - started)
            items += len(body["items"])
            token = body.get("metadata", {}).get("continue")  # a server before paging: none
            if not token:
                return times, items


def listing(args: argparse.Namespace) -> Json:
    with tempfile.TemporaryDirectory(prefix="crontask-list-") as tmp:
        root = Path(tmp)
        tasks_dir = root / "tasks"
        write_tree(tasks_dir, args.tasks // 10, 10)
        server = Server(tasks_dir, root / "state", args.pythonpath)
        try:
            server.wait_ready()
            _pages(server.port, 500)  # warm: the first views compute fire times cold
            cli = []
            for _ in range(3):
                started = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-m", "reconciler", "tasks", "--json", "--server",
                     f"http://127.0.0.1:{server.port}"],
                    capture_output=True, text=True, timeout=300, check=True,
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                )  # fmt: skip
                cli.append(time.perf_counter() - started)
                count = len(json.loads(done.stdout)["items"])
            page_times, items = _pages(server.port, 500)
            big_times, big_items = _pages(server.port, 5000)
        finally:
            server.stop()
    return {
        "tasks": args.tasks,
        "cli_items": count,
        "cli_seconds": sorted(cli)[1],
        "pages": len(page_times),
        "page_items": items,
        "page": summary_ms(page_times),
        "pages_total_seconds": sum(page_times),
        "big_pages": len(big_times),
        "big_items": big_items,
        "big_total_seconds": sum(big_times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", action="store_true", required=True)
    sub = parser.add_subparsers(dest="mode", required=True)
    f = sub.add_parser("flood")
    f.add_argument("requests", type=int)
    f.add_argument("concurrency", type=int)
    f.add_argument("settle", type=float)
    f.add_argument("--path", default="/api/v1/tasks")
    f.add_argument("--tasks", type=int, default=100)
    f.add_argument("--pythonpath")
    listed = sub.add_parser("list")
    listed.add_argument("tasks", type=int)
    listed.add_argument("--pythonpath")
    args = parser.parse_args()
    random.seed(7)
    emit(flood(args) if args.mode == "flood" else listing(args))


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
