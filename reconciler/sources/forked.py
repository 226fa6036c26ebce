"""Shares of a list of files worked on by forked worker processes, the results in order.

Reading YAML and validating tasks is CPU-bound Python, so a large folder is read fastest by one
process per core. The workers are forked, so they start with everything imported and with the
caller's state (a source and its rules) as it is; a fork is safe only from a process with no
other thread, which the callers check (a lock another thread held at the fork stays held in
the child forever).
"""

from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# A share of files per task sent to a worker: small enough that the workers end together, and
# that the caller can work on the first results while the workers read the rest.
SHARE = 64
# Shares given out per worker ahead of the caller: enough that no worker waits for one, and a
# bound on what waits for the caller (a share's results are at most 64 files' worth).
AHEAD = 4


def in_workers(
    work: Callable[[Any, Sequence[Item]], Result],
    state: Any,
    items: Sequence[Item],
    workers: int,
) -> Iterator[Result]:
    """``work(state, share)`` for each share of ``items``, on ``workers`` forked processes;
    the results in the order of the shares, each as soon as it and those before it are done.
    At most ``AHEAD`` shares per worker are given out ahead of the caller, so that results
    the caller has not taken yet never pile up past that. Raises ``BrokenProcessPool`` if a
    worker died (killed, out of memory). However the iteration ends (an error, Ctrl-C, the
    caller stopping early), the shares not begun are dropped and the workers end."""
    shares = [items[i : i + SHARE] for i in range(0, len(items), SHARE)]
    # A forked worker flushes the standard streams it inherited when it ends: anything still
    # buffered here would be printed twice.
    sys.stdout.flush()
    sys.stderr.flush()
    workers = min(workers, len(shares))
    pool = concurrent.futures.ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_adopt,
        initargs=(work, state),
    )
    given: collections.deque[concurrent.futures.Future[Result]] = collections.deque()
    try:
        for share in shares:
            given.append(pool.submit(_work, share))
            if len(given) > AHEAD * workers:
                yield given.popleft().result()
        while given:
            yield given.popleft().result()
    finally:
        # Waited for however the iteration ends: the workers finish the share they are on
        # (Python's exit would wait for them anyway). A pool left to end by itself races
        # Python's exit hook, which then writes to the pool's closed wake-up pipe and prints
        # a traceback ("Bad file descriptor") after the error or the Ctrl-C.
        pool.shutdown(wait=True, cancel_futures=True)


# What a worker works with: set before its first share (the fork inherits both).
_task: tuple[Callable[[Any, Sequence[Any]], Any], Any] | None = None


def _adopt(work: Callable[[Any, Sequence[Any]], Any], state: Any) -> None:
    global _task
    _task = (work, state)
    # Ctrl-C reaches the whole process group: the parent stops, and the workers, idle or not,
    # must not each print a KeyboardInterrupt of their own. A parent running an event loop
    # (`crontask run`) has its signals written to a pipe the loop reads: a signal sent to a
    # worker must not reach the parent's loop through the inherited pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)


def _work(share: Sequence[Any]) -> Any:
    assert _task is not None
    work, state = _task
    return work(state, share)
