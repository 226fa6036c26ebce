"""What a command's environment costs per spawn: ``CommandRun`` alone, no scheduler, no store.

    python bench/spawn_env.py [--runs N] [--repeats R]

Each repeat spawns N ``/bin/true`` through ``CommandRun`` (own session, output pipe, pidfd child
watcher, as ``crontask run`` does), all started together, with three environments: this
process's environment plus one run variable, as ``str`` (what the dispatcher passes), the same
pre-encoded as ``bytes``, and a single ``PATH`` plus the run variable. Variants alternate within
each repeat; the table shows the medians of CPU time (this process) and wall time per spawn.
This is the measurement behind the note on environments in ``bench/ANALYSIS.md``; it is not
part of ``make bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median_of

Env = Mapping[str, str] | Mapping[bytes, bytes]

VARIANTS: dict[str, Callable[[int], Env]] = {
    "inherited (str)": lambda i: {**os.environ, "CRONTASK_RUN_ID": str(i)},
    "inherited (bytes)": lambda i: {**os.environb, b"CRONTASK_RUN_ID": str(i).encode()},
    "PATH only": lambda i: {"PATH": "/usr/bin:/bin", "CRONTASK_RUN_ID": str(i)},
}


async def _spawn_all(make_env: Callable[[int], Env], runs: int) -> tuple[float, float]:
    from reconciler.controller.runtime import _watch_children_with_pidfd
    from reconciler.runner.command import CommandRun

    _watch_children_with_pidfd(asyncio.get_running_loop())
    cpu, wall = time.process_time(), time.perf_counter()
    # CommandRun's env is typed as str; subprocess takes bytes as well on POSIX.
    commands = [CommandRun(["/bin/true"], env=make_env(i)) for i in range(runs)]  # type: ignore[arg-type]
    await asyncio.gather(*(c.run() for c in commands))
    return (time.process_time() - cpu) / runs, (time.perf_counter() - wall) / runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    for r in range(args.repeats):
        order = list(VARIANTS) if r % 2 == 0 else list(reversed(VARIANTS))
        for name in order:
            results[name].append(asyncio.run(_spawn_all(VARIANTS[name], args.runs)))
    print(f"{args.runs} spawns of /bin/true per repeat, {args.repeats} repeats, medians")
    inherited = len(os.environ) + 1
    print(f"| environment ({inherited} variables inherited) | CPU µs/spawn | wall µs/spawn |")
    print("|---|---|---|")
    for name, samples in results.items():
        cpu = median_of([c for c, _ in samples]) * 1e6
        wall = median_of([w for _, w in samples]) * 1e6
        print(f"| {name} | {cpu:.0f} | {wall:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
