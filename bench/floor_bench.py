"""The machine's floor for starting processes: N ``/bin/true`` back to back, no scheduler.

    python bench/floor_bench.py --worker processes N    # one process per core, posix_spawn
    python bench/floor_bench.py --worker threads N      # crontask's Spawner, no scheduler
    python bench/floor_bench.py --worker threads N --open 2000  # ... with 2 000 more fds open

``processes``: as many Python processes as the machine has cores, each started before the
measurement and waiting for a common instant, then calling ``os.posix_spawn("/bin/true")`` back
to back (the child in a new session, with a one-variable environment, stdout on a pipe), N in
all; children are reaped after the last start. ``threads``: one process, crontask's own
``runner.process.Spawner`` (``posix_spawn`` through ctypes from its pool of threads, the GIL
released for the call; what a run's process is started with) fed N starts at once, each
making its pipe in the thread as a run's start does. Rate = starts / (last start - first
start), from the instants noted right after each start returned. The floor is the faster of
the two: the most processes this machine starts per second when nothing else is done.
``--open K`` holds K more descriptors open while the Spawner starts (what runs in progress
hold: each clone copies them into the child, which closes them again).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Json, emit

ENV = {"PATH": "/usr/bin:/bin"}

CHILD = """
import json, os, sys, time
n, due = int(sys.argv[1]), float(sys.argv[2])
read_fd, write_fd = os.pipe()
actions = [(os.POSIX_SPAWN_DUP2, write_fd, 1), (os.POSIX_SPAWN_DUP2, write_fd, 2)]
env = {"PATH": "/usr/bin:/bin"}
while time.time() < due:
    pass
pids, first = [], time.time()
for _ in range(n):
    pids.append(os.posix_spawn("/bin/true", ["/bin/true"], env, file_actions=actions, setsid=True))
last = time.time()
os.close(write_fd)
for pid in pids:
    os.waitpid(pid, 0)
print(json.dumps({"first": first, "last": last, "n": n}))
"""


def processes(n: int) -> Json:
    cores = os.cpu_count() or 1
    due = time.time() + 1.0 + 0.1 * cores  # every worker is waiting by then
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(n // cores + (i < n % cores)), str(due)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(cores)
    ]
    answers = [json.loads(w.communicate(timeout=120)[0]) for w in workers]
    first = min(a["first"] for a in answers)
    last = max(a["last"] for a in answers)
    return {"mode": "processes", "n": n, "workers": cores, "rate": n / (last - first)}


def threads(n: int, open_fds: int = 0) -> Json:
    from concurrent.futures import wait

    from reconciler.runner.process import Spawner

    spawner = Spawner()
    starts: list[float] = []
    held = [os.pipe() for _ in range(open_fds // 2)]

    def start() -> int:
        # As a run starts: the pipe made in the thread, just before the spawn.
        (pid, _), read_fd = spawner._start_piped(["/bin/true"], ENV, None)
        starts.append(time.time())
        os.close(read_fd)
        return pid

    # Warm the pool up (threads started, libc loaded) before the clock runs.
    pool = spawner._executor()
    warm = [pool.submit(start) for _ in range(spawner.threads)]
    wait(warm)
    for future in warm:
        os.waitpid(future.result(), 0)
    starts.clear()
    futures = [pool.submit(start) for _ in range(n)]
    wait(futures)
    for future in futures:
        os.waitpid(future.result(), 0)
    for pair in held:
        os.close(pair[0])
        os.close(pair[1])
    return {
        "mode": "threads",
        "n": n,
        "workers": spawner.threads,
        "parallel": spawner.parallel,
        "open": 2 * len(held),
        "rate": (len(starts) - 1) / (max(starts) - min(starts)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true", help="run one measurement")
    parser.add_argument("mode", choices=["processes", "threads"])
    parser.add_argument("n", type=int)
    parser.add_argument("--open", type=int, default=0, help="threads: descriptors held open")
    args = parser.parse_args(argv)
    emit(processes(args.n) if args.mode == "processes" else threads(args.n, args.open))
    return 0


if __name__ == "__main__":
    sys.exit(main())
