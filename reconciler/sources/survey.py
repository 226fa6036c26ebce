"""Reading a folder of many files on every core, for ``crontask validate``.

``crontask validate`` reports what a refresh of a :class:`DirectorySource` finds (each file's
errors, the keys defined more than once, how many files and tasks) and keeps none of the
tasks. So its files can be read by worker processes, each a share of them under the same
source's rules, which send back only what the report needs: the errors, the documents
ignored, where each task key is defined (``Placed``) and the warnings. The keys are then
settled here (``core.desired.check``), in the same order and with the same messages as
``assemble``. The warnings are those of valid tasks (``schedule_warning``, ``deadline_warning``,
``default_container_warning``, ``http_warnings``) and those of the file's documents (a pasted
CronJob: ``FileState.warnings``, which ``crontask run`` logs once per version of a file), in line
order: 20 of a file's documents at most, then a line that says there are more.
``Survey.warned`` counts them all, shown or not (not that line).
The files the walk does not read for their ending's case (``walk.misnamed``: ``Backup.YAML``) are
warnings too, first, one a file.

Reading is CPU-bound (YAML, then validating each task), so the workers are as many as the
cores this process may use. They are forked from this process (``crontask validate`` has no
other thread), so they start with everything imported. A small folder, or a single core, is
read in this process: starting workers would cost more than it saves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from reconciler.core.actions import http_warnings
from reconciler.core.desired import DefinitionError, Location, Placed, check, schedule_warning
from reconciler.core.job_pods import default_container_warning
from reconciler.core.jobs import deadline_warning
from reconciler.host import usable_cores
from reconciler.sources.docwarnings import LOGGED_WARNINGS, counted
from reconciler.sources.files import DirectorySource
from reconciler.sources.forked import in_workers
from reconciler.sources.limits import PARALLEL_MIN_FILES
from reconciler.sources.walk import MISNAMED, MISNAMED_LOGGED


@dataclasses.dataclass(frozen=True, slots=True)
class Survey:
    files: int
    tasks: int
    definitions: int  # each counted, a key defined twice twice: what ``--max-tasks`` bounds
    ignored: int  # documents of other kinds
    problems: list[str]
    warnings: list[str]  # files misnamed, valid tasks that read differently elsewhere, CronJobs
    warned: int  # the warnings, those not shown among them (a line of ``warnings`` says so)
    empty: tuple[Path, ...] = ()  # the roots with no task file (nor a misnamed one) under them


@dataclasses.dataclass(frozen=True, slots=True)
class _FileReport:
    errors: tuple[DefinitionError, ...]
    ignored: int
    placed: tuple[Placed, ...]
    warnings: tuple[str, ...]
    warned: int  # the file's warnings, shown or not


def survey(source: DirectorySource, workers: int | None = None) -> Survey:
    """Read every file under ``source``'s roots, on ``workers`` processes (default: one per
    usable core; 1: in this process), and report as ``crontask validate`` does. Raises
    ``BrokenProcessPool`` if a worker died (killed, out of memory)."""
    paths, _ = source.scan()
    workers = usable_cores() if workers is None else workers
    if workers > 1 and len(paths) >= PARALLEL_MIN_FILES:
        shares = in_workers(_read_share, source, paths, workers)
        reports = [report for share in shares for report in share]
    else:
        reports = _read_share(source, paths)
    read = [r for r in reports if r is not None]  # None: gone since the scan
    errors = [e for r in read for e in r.errors] + source.errors()
    tasks, problems = check((p for r in read for p in r.placed), errors)
    definitions = sum(len(r.placed) for r in read)
    named = source.misnamed.shown  # each counted, MISNAMED_LOGGED shown, as run logs them
    misnamed = [f"{path}: warning: {MISNAMED}" for path in named[:MISNAMED_LOGGED]]
    if len(named) > MISNAMED_LOGGED:
        misnamed.append(f"{len(named) - MISNAMED_LOGGED} more files not read for their ending")
    warnings = misnamed + [w for r in read for w in r.warnings]
    ignored, warned = sum(r.ignored for r in read), len(named) + sum(r.warned for r in read)
    empty = _empty_roots(source.roots, [*paths, *map(Path, named)])  # named: as shown
    return Survey(len(read), tasks, definitions, ignored, problems, warnings, warned, empty)


def _empty_roots(roots: Sequence[Path], found: Sequence[Path]) -> tuple[Path, ...]:
    """The ``roots`` none of the files ``found`` is under (or is): a folder mistyped, or one of
    files not named .yaml, beside others that hold tasks."""
    return tuple(r for r in roots if not any(f.is_relative_to(r) for f in found))


def _read_share(source: DirectorySource, paths: Sequence[Path]) -> list[_FileReport | None]:
    return [_report(source, path) for path in paths]


def _report(source: DirectorySource, path: Path) -> _FileReport | None:
    state = source.read(path)
    if state is None:
        return None
    good = state.good or ()
    placed = tuple(Placed(d.key, d.location) for d in good)
    found = [(w.location, str(w)) for w in state.warnings[:LOGGED_WARNINGS]]
    found += [
        (d.location, w)
        for d in good
        for w in (schedule_warning(d), deadline_warning(d), default_container_warning(d))
        if w is not None
    ]
    found += [(d.location, w) for d in good for w in http_warnings(d)]
    warnings = [w for _, w in sorted(found, key=_position)]
    warned = len(warnings)
    if len(state.warnings) > LOGGED_WARNINGS:  # kept one past them to say so (``docwarnings``)
        warnings.append(f"{state.warnings[0].location.path}: warning: more warnings not shown")
        warned += counted(state.warnings[LOGGED_WARNINGS:])  # each one not shown
    return _FileReport(state.errors, state.ignored, placed, tuple(warnings), warned)


def _position(found: tuple[Location, str]) -> tuple[int, int]:
    return found[0].line, found[0].column
