"""Reading a large folder on every core before ``crontask run``'s first pass.

A first pass over a large folder is mostly reading: YAML, then validating each task (14 of
the 21 s of a first pass over 100 000 tasks in 10 000 files, read one file after the other on
one core). So forked workers do the YAML half of each file (``documents.plain_text``: read it
within the source's bounds, compose, build plain data) and send back the text and its data;
this process validates the tasks of each share as it arrives, while the workers read on. The
states are handed to the source (``DirectorySource.adopt``), and the first refresh takes each
one whose file still has the signature it was read with, so that nothing changed in between
is missed. A file that is not plain, or has a task that does not validate, is read again here
by ``parse_text``, which finds and places its errors exactly as a refresh would.

Forking is safe only while this process has no other thread: read ahead is skipped
otherwise (the first refresh then reads every file itself, as it always could).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from reconciler.sources.documents import PlainText, plain_text
from reconciler.sources.files import DirectorySource, FileState, Signature, signature_of
from reconciler.sources.forked import PARALLEL_MIN_FILES, in_workers

log = logging.getLogger("crontask.sources")


@dataclasses.dataclass(frozen=True, slots=True)
class _Read:
    signature: Signature
    text: str
    plain: PlainText | None  # None: not plain, read again with parse_text


def read_ahead(source: DirectorySource, workers: int) -> int:
    """Read every file under ``source``'s roots on ``workers`` processes and hand the states
    to the source for its first refresh; the files read (0: nothing done, because the folder
    is small, ``workers`` is 1, or this process has other threads)."""
    if workers < 2 or threading.active_count() > 1:
        return 0
    paths, _ = source.scan()
    if len(paths) < PARALLEL_MIN_FILES:
        return 0
    started = time.perf_counter()
    ahead: dict[Path, FileState] = {}
    try:
        for share in in_workers(_read_share, source, paths, workers):
            for path, read in share:
                if isinstance(read, _Read):  # validated here, while the workers read on
                    read = source.state_of(path, read.signature, read.text, plain=read.plain)
                ahead[path] = read
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
                "workers": workers,
                "seconds": round(time.perf_counter() - started, 3),
            }
        },
    )
    return len(ahead)


def _read_share(
    source: DirectorySource, paths: Sequence[Path]
) -> list[tuple[Path, _Read | FileState]]:
    """In a worker: each file's text and plain data, or the state of a file that cannot be
    read (too large, a link out of bounds, not UTF-8)."""
    read: list[tuple[Path, _Read | FileState]] = []
    for path in paths:
        signature = signature_of(path)
        loaded = None if signature is None else source.load(path, signature)
        if loaded is None:
            continue  # gone since the scan: the refresh sees it
        if isinstance(loaded, FileState):
            read.append((path, loaded))
            continue
        signature, text = loaded
        read.append((path, _Read(signature, text, plain_text(text))))
    return read
