"""Where the event loop's CPU goes for each command run: a profile of one burst, not a guess.

    python bench/profile_runs.py [N] [--top K] 2>/dev/null      (default: N=1000, K=25)

Runs ``bench/lateness.py``'s ``command`` measurement (crontask's real ``Dispatcher`` and
``CommandRun`` spawning N same-second ``/bin/true``, in the SQLite store ``crontask run``
uses) with cProfile on the event loop's thread, counting that thread's CPU time
(``time.thread_time_ns``: a function waiting for the GIL or for a core costs nothing here)
over the measured window only (from just before the slot until every run's record is
final). It prints the loop thread's CPU per run by where the code lives (crontask's modules,
APScheduler, asyncio, logging, the SQL layers, the rest of the standard library), then the
functions with the most CPU of their own. The store's and the spawners' threads are not in
it: their work is measured in the burst's CPU rows of ``make bench``.

cProfile's own overhead inflates every figure (by about half on this machine: the loop
thread's CPU per run is 0.35-0.5 ms without it); read the shares, not the absolute values.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lateness  # beside this file

# (prefix of a file's path, the group it is counted in); the first that matches wins.
GROUPS = (
    ("reconciler/", None),  # crontask's own: grouped by package and module
    ("apscheduler/", "APScheduler"),
    ("asyncio/", "asyncio (the loop, tasks, futures)"),
    ("logging/", "logging"),
    ("sqlalchemy/", "SQLAlchemy"),
    ("sqlite3/", "sqlite3"),
    ("concurrent/", "concurrent.futures"),
    ("selectors.py", "selectors (the loop's epoll: each run's pidfd and pipe)"),
    ("threading.py", "threading (locks, events)"),
    ("posixpath", "posixpath"),
    ("dataclasses.py", "dataclasses (replace)"),
    ("typing.py", "typing (isinstance of a runtime Protocol)"),
)
SHOWN_US = 3.0  # a group of less CPU a run is counted in "everything under"


def group_of(filename: str, name: str) -> str:
    """The group a function ``name`` of ``filename`` is counted in (a C function: its own)."""
    path = filename.replace(os.sep, "/")
    for prefix, group in GROUPS:
        at = path.rfind("/" + prefix)
        if at < 0:
            continue
        if group is not None:
            return group
        return path[at + 1 :].removesuffix(".py").replace("/", ".")
    if filename == "~":
        return "C: " + name.strip("<>").removeprefix("built-in method ")
    return "the rest (standard library, bench)"


def profiled(n: int) -> tuple[pstats.Stats, dict[str, Any]]:
    """One ``command`` measurement of ``n`` runs with the loop thread profiled."""
    profile = cProfile.Profile(timer=time.thread_time_ns, timeunit=1e-9)
    measure = lateness._measure

    async def measured(*args: Any) -> Any:
        profile.enable()
        try:
            return await measure(*args)
        finally:
            profile.disable()

    lateness._measure = measured  # type: ignore[assignment]
    try:
        result = lateness.measure("command", n, "sqlite")
    finally:
        lateness._measure = measure
    return pstats.Stats(profile), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("n", type=int, nargs="?", default=1000)
    parser.add_argument("--top", type=int, default=25, help="functions listed")
    args = parser.parse_args(argv)
    from reconciler.host import raise_open_files

    raise_open_files()  # as `crontask run` does at start
    stats, result = profiled(args.n)
    if "error" in result:
        print(f"no profile: {result['error']}", file=sys.stderr)
        return 1
    runs = max(args.n - int(result["lost"]), 1)
    own: defaultdict[str, float] = defaultdict(float)
    functions: list[tuple[float, float, str]] = []
    for (filename, line, name), (_, calls, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        group = group_of(filename, name)
        own[group] += tottime
        functions.append((tottime, calls, group if filename == "~" else f"{group}:{line} {name}"))
    total = sum(own.values())
    print(f"N={args.n}: {runs} runs started; the loop thread's CPU under cProfile:")
    print(f"{total * 1e6 / runs:.0f} us a run in all\n")
    print("| where | us a run | share |\n|---|---|---|")
    shown = {group: spent for group, spent in own.items() if spent * 1e6 / runs >= SHOWN_US}
    shown[f"everything under {SHOWN_US:g} us a run"] = total - sum(shown.values())
    for group, spent in sorted(shown.items(), key=lambda item: -item[1]):
        print(f"| {group} | {spent * 1e6 / runs:.1f} | {spent / total:.0%} |")
    print("\n| function (own CPU) | calls a run | us a run |\n|---|---|---|")
    for seconds, calls, where in sorted(functions, reverse=True)[: args.top]:
        print(f"| {where} | {calls / runs:.2f} | {seconds * 1e6 / runs:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
