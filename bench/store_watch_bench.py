"""What watching a run store call on PostgreSQL costs (``store.sql_cut``), against a timer thread
a call.

    python bench/store_watch_bench.py [--calls 20000] [--repeats 3]

Each transaction of the run store on PostgreSQL is watched, so that one the database never
answers is cut past its bound: one thread watches every call (a heap push at the start, a flag
set under a lock at the end). The table gives what a call costs that way, and what a
``threading.Timer`` started and cancelled a call (the first version of the membership's cut)
would cost, each the best of ``--repeats`` runs of ``--calls`` calls, none of them late. No
database is needed: the watch is the same whatever the call does. Not part of ``make bench``.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable

from sqlalchemy import create_engine

from reconciler.store.sql_cut import PG_WRITE_ANSWER_WAIT, Cutter


def _watched(cutter: Cutter) -> Callable[[], None]:
    def call() -> None:
        with cutter.bounded(PG_WRITE_ANSWER_WAIT):
            pass

    return call


def _timed() -> None:
    timer = threading.Timer(PG_WRITE_ANSWER_WAIT, lambda: None)
    timer.daemon = True
    timer.start()
    timer.cancel()


def _best(call: Callable[[], None], calls: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - began) / calls)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cutter = Cutter(create_engine("sqlite://"))
    watched = _best(_watched(cutter), args.calls, args.repeats)
    timer = _best(_timed, args.calls, args.repeats)
    print("| a call watched by | cost a call |")
    print("|---|---|")
    print(f"| the watchdog thread (sql_cut) | {watched * 1e6:,.1f} µs |")
    print(f"| a threading.Timer a call | {timer * 1e6:,.1f} µs |")


if __name__ == "__main__":
    main()
