"""The runs in progress that hold this process's file descriptors, and the bounds on them.

The dispatcher asks before it starts a run (``Dispatcher.fire``): at most ``core.runs.RUNS_MAX``
runs of one task, and, of all tasks, as many as this process's limit on open files leaves room
for (``core.runs.runs_at_once``), whatever their trigger. A slot past either is skipped,
``TooManyRuns`` (``core.runs.too_many_runs`` says which bound, and its value). A ``job`` task is
not bounded: its runs hold no descriptor here (its Jobs run in the cluster, whose quota bounds
them, as a CronJob's). The runs are counted as they are decided and as they end, so a slot
costs no walk over the runs in progress, however many there are.
"""

from __future__ import annotations

import resource

from reconciler.core.desired import Definition
from reconciler.core.runs import too_many_runs

TOO_MANY_RUNS = "TooManyRuns"


class RunBounds:
    """The runs in progress of the dispatcher's tasks that hold descriptors here: each from
    its decision (it holds its slot, and its process starts at most a second later) to its
    last record, its retries included."""

    def __init__(self, open_files: int | None = None) -> None:
        # None: this process's soft limit, read as the first run is asked for (``crontask
        # run`` raises it at start); an unlimited one bounds nothing.
        self._open_files = open_files
        self._going: set[str] = set()  # the ids of the runs that hold descriptors here

    @property
    def open_files(self) -> int | None:
        if self._open_files is None:
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            self._open_files = -1 if soft == resource.RLIM_INFINITY else soft
        return None if self._open_files < 0 else self._open_files

    def refused(self, definition: Definition, mine: int) -> str | None:
        """Why another run of ``definition``'s task, with ``mine`` runs in progress, may not
        start now, if it may not (``core.runs.too_many_runs``)."""
        if definition.task.spec.job is not None:
            return None
        return too_many_runs(mine, len(self._going), self.open_files)

    def admit(self, definition: Definition, run: str) -> None:
        """The run ``run`` of ``definition`` is in progress (decided: it holds its slot) until
        ``release``."""
        if definition.task.spec.job is None:
            self._going.add(run)

    def release(self, run: str) -> None:
        self._going.discard(run)
