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
nothing else would read it.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

from reconciler.core.desired import DefinitionError, Location
from reconciler.sources.filestate import FileState


def growth(
    path: object, before: FileState | None, after: FileState, paths_of: Mapping[str, Set[object]]
) -> tuple[int, int]:
    """(keys added, keys removed) from the source's keys if ``after`` replaces ``before`` as
    what ``path`` holds: a key another file defines too is neither."""
    new = {d.key for d in after.good or ()}
    added = sum(1 for key in new if key not in paths_of)
    removed = sum(
        1
        for d in (before.good or () if before else ())
        if d.key not in new and paths_of.get(d.key) == {path}
    )
    return added, removed


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
        (DefinitionError(where, why),),
        after.ignored,
        after.revision,
    )


def declared_past(tasks: int, bound: int) -> str | None:
    """What ``crontask validate`` says of a folder that declares more tasks than a source of
    ``crontask run`` holds; None if it does not."""
    if tasks <= bound:
        return None
    return (
        f"{tasks:,} tasks declared, past the bound of {bound:,} a source holds (--max-tasks): "
        "crontask run reads the files in path order and refuses each one that would take it "
        "past the bound"
    )


def _tasks(count: int) -> str:
    return "1 task" if count == 1 else f"{count:,} tasks"
