"""The git source's options and its status: what the command line gives ``GitSource``
(``controller.options``, ``cli.daemon``) and what it tells the API and the page.

Apart from ``git`` (the source itself), which they are imported from as well."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from reconciler.sources.base import SourceState
from reconciler.sources.gitbounds import DEFAULT_MEMORY_LIMIT


@dataclasses.dataclass(frozen=True)
class GitOptions:
    url: str  # file://, https://, ssh://, or scp-like git@host:org/repo
    ref: str = "HEAD"  # branch, tag, full/abbreviated SHA, refs/...; HEAD: the default branch
    path: str = ""  # the folder (or file) inside the repository holding the YAML
    interval: float = 30.0  # seconds between fetches
    ssh_key_file: Path | None = None
    known_hosts_file: Path | None = None  # with ssh: StrictHostKeyChecking=yes against it
    token_file: Path | None = None  # an HTTPS token read from this file (on every sync)...
    token_env: str | None = None  # ...or from this environment variable
    timeout: float = 120.0  # seconds, for each git call
    memory_limit: int = DEFAULT_MEMORY_LIMIT  # bytes of address space, for each git process
    max_backoff: float = 300.0  # the longest wait after failures (or interval, if longer)
    # A revision whose path suddenly yields no file keeps the tasks of the one before, as a
    # folder does (``DirectorySource``'s ``guard_empty``): ``crontask run`` without --allow-empty.
    guard_empty: bool = False


@dataclasses.dataclass(frozen=True)
class GitStatus(SourceState):
    """``location`` is ``url#ref``; ``revision`` the commit whose tree is in force;
    ``attempted_revision`` the commit the ref named at the last fetch; ``last_sync`` when a
    sync last ended well (fetched, and the ref's commit applied or in force already: a fetch
    whose commit is refused or ambiguous is a failed sync); ``last_error`` is None once one does."""

    url: str = ""  # with any credentials stripped
    ref: str = ""
    consecutive_failures: int = 0
    next_retry_in: float = 0.0  # seconds until the next sync() is due

    @property
    def applied_revision(self) -> str | None:
        return self.revision


def retry_in(options: GitOptions, failures: int) -> float:
    """Seconds to the next sync after ``failures`` failed in a row: ``interval``, doubled on
    each failure, up to ``max_backoff`` (or ``interval``, if longer)."""
    interval = options.interval
    if failures == 0:
        return interval
    cap = max(options.max_backoff, interval)
    # min() before the power would overflow for a very long outage.
    return min(cap, interval * 2.0 ** min(failures, 32))
