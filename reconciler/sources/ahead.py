"""Reading a large folder on every core before ``crontask run``'s first pass.

A first pass over a large folder is mostly reading: YAML, then validating each task (14 of
the 21 s of a first pass over 100 000 tasks in 10 000 files, read one file after the other on
one core). So forked workers do the YAML half of each file (``documents.plain_text``: read it
within the source's bounds, compose, build plain data) and send back that data; this process
validates the tasks of each share as it arrives, while the workers read on. The states are
handed to the source (``DirectorySource.adopt``), and the first refresh takes each one whose
file still has the signature it was read with, so that nothing changed in between is missed.
A file that is not plain (a text over 64 KiB, a tag, a merge key, a repeated key, a syntax
error), or has a task that does not validate, is not taken ahead: the first refresh reads it
as it reads any file, and places its errors.

Forking is safe only while this process has no other thread: read ahead is skipped
otherwise (the first refresh then reads every file itself, as it always could).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from reconciler.sources.documents import PlainText, plain_text
from reconciler.sources.files import DirectorySource
from reconciler.sources.filestate import FileState, Signature, signature_of
from reconciler.sources.forked import in_workers
from reconciler.sources.limits import PARALLEL_MIN_FILES

log = logging.getLogger("crontask.sources")


def read_ahead(source: DirectorySource, workers: int) -> int:
    """Read the files under ``source``'s roots on ``workers`` processes and hand the states
    to the source for its first refresh; the files read (0: nothing done, because the folder
    is small, ``workers`` is 1, or this process has other threads)."""
    if workers < 2:
        return 0
    paths, _ = source.scan()
    if len(paths) < PARALLEL_MIN_FILES:
        return 0
    if threading.active_count() > 1:
        log.info(
            "files not read ahead: other threads are running; the first pass reads them",
            extra={
                "fields": {
                    "files": len(paths),
                    "threads": threading.active_count(),
                    "source": source.kind,
                }
            },
        )
        return 0
    started = time.perf_counter()
    ahead: dict[Path, FileState] = {}
    tasks = 0
    try:
        for share in in_workers(_read_share, source, paths, workers):
            for path, read in share:
                if tasks > source.max_tasks:
                    continue  # the source refuses the rest: held, they would all be in memory
                # Validated here, while the workers read on.
                state = read if isinstance(read, FileState) else source.plain_state(path, *read)
                if state is not None:
                    ahead[path] = state
                    tasks += len(state.good or ())
    except (BrokenProcessPool, OSError) as err:  # a worker killed; no process to fork
        log.warning(
            "reading ahead failed; the first pass reads every file itself",
            extra={"fields": {"error": str(err) or type(err).__name__}},
        )
        return 0
    source.adopt(ahead)
    log.info(
        "files read ahead",
        extra={
            "fields": {
                "files": len(ahead),
                "of": len(paths),
                "workers": workers,
                "seconds": round(time.perf_counter() - started, 3),
                "source": source.kind,
            }
        },
    )
    return len(ahead)


def _read_share(
    source: DirectorySource, paths: Sequence[Path]
) -> list[tuple[Path, tuple[Signature, PlainText] | FileState]]:
    """In a worker: each plain file's data, or the state of a file that cannot be read (too
    large, a link out of bounds, not UTF-8). Any other file is left to the first refresh,
    which reads it as ever; so is its text, which never travels (a share's results are at
    most 64 files of plain data, each from a text of at most 64 KiB)."""
    read: list[tuple[Path, tuple[Signature, PlainText] | FileState]] = []
    for path in paths:
        signature = signature_of(path)
        loaded = None if signature is None else source.load(path, signature)
        if loaded is None:
            continue  # gone since the scan: the refresh sees it
        if isinstance(loaded, FileState):
            read.append((path, loaded))
            continue
        signature, text = loaded
        plain = plain_text(text)
        if plain is not None:
            read.append((path, (signature, plain)))
    return read
