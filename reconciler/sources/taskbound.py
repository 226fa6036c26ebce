"""How many tasks one folder or git source may hold: ``--max-tasks``.

The bounds of a checkout and of a file (``limits``, ``gitcheckout``) keep one commit from
writing or parsing without end, but not from declaring without end: 12 files of 1 MiB of
minimal CronTasks declare 90 000 tasks, and crontask holds about 5.6 KiB of memory a task
(definition, schedule, job, status; ``bench/RESULTS.md``). So a source holds at most
``max_tasks`` task keys, counted as they are in force, and a file whose new version would take
it past them is refused as a broken file is: the tasks it defined before stay in force, each
carrying the error, and the error names the file and the bound. Nothing running is removed to
make room. A pass reads its files in path order; files that arrive in passes of their own (a
watch event each) take the room in the order they arrive.

A file refused for room is read again when a pass leaves room for what it adds (another file
lost tasks, was deleted, or a commit moved tasks from it): its text has not changed, so
nothing else would read it. Which files were refused is kept across restarts
(:class:`RefusedRecord`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from reconciler.core.desired import DefinitionError, Location
from reconciler.sources.filestate import FileState

log = logging.getLogger("crontask.sources")

PAST_BOUND = "past its bound (--max-tasks)"  # what a refusal is about (DefinitionError.about)


def growth(before: FileState | None, after: FileState) -> int:
    """The definitions the source holds more if ``after`` replaces ``before``: every
    definition is held, so a key a file repeats counts each time (the memory is per
    definition)."""
    return len(after.good or ()) - (len(before.good or ()) if before else 0)


def refused(
    before: FileState | None, after: FileState, where: Location, holds: int, bound: int
) -> FileState:
    """``after`` refused: what the file defined before stays in force, with the reason."""
    declared = len(after.good or ())
    why = (
        f"declares {_tasks(declared)}, which would take this source to {holds:,} tasks, past "
        f"its bound of {bound:,} (--max-tasks): not applied; "
    )
    why += "the tasks it defined before are kept" if before and before.good else "none is added"
    return FileState(
        after.signature,
        before.good if before else None,
        # About the bound, not the counts: an edit of another file changes them, and the
        # file, refused all the same, must not be told again (and "resolved") for it.
        (DefinitionError(where, why, about=PAST_BOUND),),
        after.ignored,
        after.revision,
        after.warnings,
    )


def declared_past(definitions: int, bound: int) -> str | None:
    """What ``crontask validate`` says of a folder that declares more tasks than a source of
    ``crontask run`` holds (every definition counts: a key defined twice, twice); None if it
    does not."""
    if definitions <= bound:
        return None
    return (
        f"{_tasks(definitions)} declared, past the bound of {bound:,} a source holds "
        "(--max-tasks): crontask run reads the files in path order and refuses each one that "
        "would take it past the bound"
    )


def _tasks(count: int) -> str:
    return "1 task" if count == 1 else f"{count:,} tasks"


class RefusedRecord:
    """The files a source refused for room, kept in crontask's state directory: a restart
    reads them last, so that the files in force before it stay in force, and the file whose
    change was refused is refused again, as a broken file would be (what it defined before
    is gone with its old text). Without the record a restart would decide in path order, and
    could apply the refused change in place of tasks that were running."""

    LIMIT = 64 * 1024 * 1024  # bytes: ours, but read as any file is, within a bound

    def __init__(self, path: Path) -> None:
        self.path = path
        self._saved: list[str] | None = None

    def load(self) -> set[str]:
        """The paths refused when the record was last saved; none if it is missing or
        unreadable (then the restart decides in path order, and says nothing worse)."""
        try:
            with self.path.open("rb") as file:
                data = file.read(self.LIMIT + 1)
            paths = json.loads(data) if len(data) <= self.LIMIT else []
        except (OSError, ValueError):
            return set()
        if not isinstance(paths, list):
            return set()
        self._saved = sorted(p for p in paths if isinstance(p, str))
        return set(self._saved)

    def save(self, paths: Iterable[Path]) -> None:
        """Write the record if it changed, atomically (a crash leaves the old one or the new)."""
        shown = sorted(str(p) for p in paths)
        if shown == (self._saved or []):
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            part = self.path.with_name(self.path.name + ".part")
            part.write_text(json.dumps(shown))
            os.replace(part, self.path)
        except OSError as err:
            log.warning(
                "files refused for room not recorded: a restart decides in path order",
                extra={"fields": {"path": str(self.path), "error": err.strerror or str(err)}},
            )
            return
        self._saved = shown
