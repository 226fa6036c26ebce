"""What a text of CronTask documents would change if it held the tasks crontask reads from
files and git: the work of ``POST /api/v1/plan``, as ``crontask plan PATH --server URL`` does
it from the other side. Reads and changes nothing of the running crontask.

- The text is read as a task file is (``sources.documents.parse_text``: the same YAML, bounds
  and messages), at the location ``body``: ``body:6:16: spec.schedule: ...``. A JSON body is
  one CronTask, read as ``POST /api/v1/tasks`` reads one (``jsonbody.parse_object``: YAML 1.1
  would read ``3e2`` as a string and refuse a surrogate pair's escapes) and validated as a
  file's document, every problem at ``body:1:1`` (the note of how many more there are last).
  Without a Kubernetes connection a ``job`` task is the error of its key, as ``run`` makes it.
- The text is bounded by the server's ``--max-tasks`` as a pass bounds each source, the
  folder and git each on its own (``sources.taskbound``, its words). A task in force counts
  in its own source, a new one in ``new_source`` (the folder when the server reads one). A
  pass refuses each file that would grow the source past the bound (every definition counts,
  a key repeated too), and a text cannot tell its files apart: so past a source's bound no
  change of that source is planned, its tasks in force the text changes or removes are kept
  (``kept``) and a problem names the additions held. A file that adds nothing does apply its
  changes and removals in a pass; the problem says so, as the text cannot say which ones
  those are. What the source keeps for a broken document counts as held.
- Its tasks are settled with those in force from the other sources (the API, custom
  resources) as a pass settles them, so a key both define is reported as the conflict the
  pass would report, and the side that would win is the one planned.
- They are planned (``core.plan.plan``) against the tasks in force from files and git. A task
  a broken document still names is kept as it is, as ``run`` keeps a broken file's tasks; an
  error that names no task (a YAML syntax error, a bound broken, not UTF-8, a document without
  a valid name) may hide any of them, so then none of them is removed: each one the text does
  not yield is kept (its adds and changes are still planned), whatever else its errors name.
  So is a syntax error that names its task (``documentkeys.key_before_error``): the parser
  stops there, and the documents after it may be any of them too.
  An empty set of tasks removes nothing unless ``allow_empty``, as for ``run``: a text that
  yields nothing and names no task holds them (the route's default is the server's own
  ``--allow-empty``).
- For a caller who may not write tasks (not ``exact``), both sides are planned as that caller
  reads them (``models.for_readers``: an http URL without its user name, password, path and
  query values). A change only in those parts is no change to that caller: were it a step, a
  viewer could post guesses of a task's secret URL and learn from ``1 to change`` against
  ``unchanged`` which guess is right. Nothing in the answer depends on a hidden part.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Final

import yaml
from pydantic import ValidationError

from reconciler.api.jsonbody import BodyProblem, parse_object
from reconciler.controller.job_options import NO_CONNECTION
from reconciler.core.desired import (
    Definition,
    DefinitionError,
    Location,
    SourceKind,
    assemble,
)
from reconciler.core.model import CronTask
from reconciler.core.plan import FieldChange, Plan, Step, diff_documents, plan
from reconciler.core.urls import redact_request_url
from reconciler.sources.boms import decoded, document_boms, not_utf8
from reconciler.sources.documentkeys import key_of
from reconciler.sources.documents import parse_text, unexpected
from reconciler.sources.filestate import UNKNOWN, FileState
from reconciler.sources.messages import MAX_SHOWN, Problem, more_problems, problems
from reconciler.sources.taskbound import refused

_LOADER: Final[type[yaml.SafeLoader]] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
PLANNED_KINDS: Final = (SourceKind.FILE, SourceKind.GIT)
BODY: Final = "body"  # the location of the posted text in its problems and steps
# A JSON body's problems listed: one fewer than the route shows, so that the note of how many
# more there are, at the same place, is shown last and none of them is cut for it.
JSON_SHOWN: Final = MAX_SHOWN - 1
NAMES_SHOWN: Final = 5  # of the additions held past a bound, the keys a problem names
_SOURCE_NAMES: Final = {SourceKind.FILE: "the folder's", SourceKind.GIT: "git's"}


@dataclasses.dataclass(frozen=True, slots=True)
class TextPlan:
    plan: Plan
    kept: tuple[str, ...]  # tasks kept as they are: a broken document names them
    problems: tuple[str, ...]  # every error and conflict of the text, as `validate` words it


def plan_text(
    data: bytes,
    in_force: Mapping[str, Definition],
    *,
    jobs: bool,
    allow_empty: bool,
    exact: bool = True,
    max_tasks: int | None = None,
    as_json: bool = False,
    new_source: SourceKind = SourceKind.FILE,
) -> TextPlan:
    """See the module docstring. Never raises for a bad text: its problems say what is wrong.
    Not ``exact``: the plan, its steps' definitions too, is of the tasks as readers see them.
    ``max_tasks``: the server's ``--max-tasks`` (None: no bound). ``as_json``: ``data`` is
    one CronTask as JSON (``_read_json``), not a task file's text. ``new_source``: the source
    a task not in force would be added to (files or git), counted against its bound."""
    current = {k: d for k, d in in_force.items() if d.location.source in PLANNED_KINDS}
    read, errors, notes, stopped = _read(data, as_json=as_json)
    hides = stopped or any(e.key is None for e in errors)  # any task's document, unread
    definitions, refusals, held = _bounded(read, errors, hides, current, max_tasks, new_source)
    if not jobs:
        definitions, errors = _without_jobs(definitions, errors)
    others = [d for d in in_force.values() if d.location.source not in PLANNED_KINDS]
    settled = assemble([*definitions, *others], [*errors, *refusals])
    desired = {k: d for k, d in settled.tasks.items() if d.location.source in PLANNED_KINDS}
    # A refusal names no task but hides none either: the text's own errors decide what stays.
    desired.update(held)  # a source past its bound: none of its changes, see _bounded
    kept = _kept(errors, hides, desired, current, allow_empty=allow_empty)
    kept = tuple(sorted({*kept, *_changed(read, held, exact=exact)}))
    desired.update((k, current[k]) for k in kept)
    if not exact:
        desired = {k: _as_read(d) for k, d in desired.items()}
        current = {k: _as_read(d) for k, d in current.items()}
    found = plan(desired, current, allow_empty=allow_empty)
    return TextPlan(found, kept, (*settled.problems, *notes))


def _kept(
    errors: list[DefinitionError],
    hides: bool,
    desired: Mapping[str, Definition],
    current: Mapping[str, Definition],
    *,
    allow_empty: bool,
) -> tuple[str, ...]:
    """The tasks in force that the text does not yield and ``run`` would keep: those a broken
    document names; all of them when the text ``hides`` documents (an error that names no
    task: a syntax error, a bound, not UTF-8, a document without a valid name; or a syntax
    error that names its own, past which nothing was read), as they may be any of them and
    ``run`` keeps a broken file whole, whatever the other errors name. A text that yields
    nothing and names no task in force holds them instead, unless ``allow_empty`` (``crontask
    plan FILE --server`` says the same of such a file): no removal is planned either way."""
    gone = current.keys() - desired.keys()
    named = gone & {e.key for e in errors if e.key}
    # A named task kept makes the set not empty: the others must be kept, not removed, too.
    if hides and (desired or allow_empty or named):
        return tuple(sorted(gone))
    return tuple(sorted(named))


# The definitions, the errors, the notes shown after every problem, and whether the reading
# stopped before the end of the text (a YAML syntax error: what follows it is unread).
Read = tuple[list[Definition], list[DefinitionError], tuple[str, ...], bool]


def _read(data: bytes, *, as_json: bool) -> Read:
    """The text's definitions, its errors, the notes shown after every problem, and whether
    its reading stopped before its end."""
    if as_json:
        return _read_json(data)
    try:
        text = decoded(data)  # UTF-16 or UTF-32 without a byte order mark named, as a file's
    except UnicodeDecodeError as err:  # worded and placed as for a file (sources.files)
        line, column, why = not_utf8(data, err)
        return [], [DefinitionError(Location(SourceKind.FILE, BODY, line, column), why)], (), True
    parsed = parse_text(text, BODY)
    # Only a keyed error can hide documents unnoticed: one without a key hides them anyway.
    stopped = any(e.key for e in parsed.errors) and _stops_early(text)
    return parsed.definitions, parsed.errors, (), stopped


def _stops_early(text: str) -> bool:
    """Whether YAML reading ``text`` ends at a syntax error, before the documents after it: the
    parser's events alone (a bounded body, no document built), as ``parse_text`` reads it. The
    composer's errors too, which every event parses past: an alias of no anchor before it in
    its document, an anchor given twice in one."""
    anchors: set[str] = set()
    try:
        for event in yaml.parse(document_boms(text), Loader=_LOADER):
            if isinstance(event, yaml.DocumentStartEvent):
                anchors.clear()
            elif isinstance(event, yaml.AliasEvent):
                if event.anchor not in anchors:
                    return True
            elif isinstance(event, yaml.NodeEvent) and event.anchor is not None:
                if event.anchor in anchors:
                    return True
                anchors.add(event.anchor)
    except yaml.YAMLError:
        return True
    return False


def _read_json(data: bytes) -> Read:
    """One CronTask object, read as ``POST /api/v1/tasks`` reads one (``jsonbody.parse_object``:
    JSON, not YAML 1.1, which reads ``3e2`` as a string and refuses a surrogate pair's
    escapes; the same bounds) and validated as a file's document is, its problems worded as
    a file's (``sources.messages``). Every problem is at ``body:1:1``: the note of how many
    more there are is returned apart, to be shown after them (sorted with them, it came
    first)."""
    where = Location(SourceKind.FILE, BODY, 1, 1)
    try:
        document = parse_object(data)
    except BodyProblem as problem:  # no task named: as a YAML syntax error
        return [], [DefinitionError(where, str(Problem(problem.path, problem.message)))], (), True
    key = key_of(document)
    try:
        task = CronTask.model_validate(document)  # as a file's document (documents._document)
    except ValidationError as err:
        said, more = problems(err, JSON_SHOWN)
        errors = [DefinitionError(where, str(p), key) for p in said]
        note = str(DefinitionError(where, more_problems(more, JSON_SHOWN))) if more else None
        return [], errors, (note,) if note else (), False
    except Exception as err:  # a bug of crontask's, worded and logged as for a file
        return [], [unexpected(err, where, key)], (), False
    return [Definition.of(task, where)], [], (), False


def _bounded(
    definitions: list[Definition],
    errors: list[DefinitionError],
    hides: bool,
    current: Mapping[str, Definition],
    max_tasks: int | None,
    new_source: SourceKind,
) -> tuple[list[Definition], list[DefinitionError], dict[str, Definition]]:
    """``definitions`` without those of a source a pass could refuse, a problem for each
    source past its bound, and the tasks in force of those sources: each one stays as it is
    in force (see the module docstring)."""
    if max_tasks is None:
        return definitions, [], {}
    stays = _staying(errors, hides, definitions, current)
    past: set[SourceKind] = set()
    refusals = []
    for source in PLANNED_KINDS:
        mine = [d for d in definitions if _source_of(d.key, current, new_source) == source]
        before = [d for d in current.values() if d.location.source == source]
        holds = len(mine) + sum(1 for k in stays if current[k].location.source == source)
        # As the pass (sources.taskbound.growth): every definition counts, a repeated key too.
        if holds > len(before) and holds > max_tasks:
            past.add(source)
            adds = sorted({d.key for d in mine} - current.keys())
            refusals.append(_refusal(source, before, mine, holds, max_tasks, adds))
    held = {k: d for k, d in current.items() if d.location.source in past}
    out = [d for d in definitions if _source_of(d.key, current, new_source) not in past]
    return out, refusals, held


def _changed(
    definitions: list[Definition], held: Mapping[str, Definition], *, exact: bool
) -> set[str]:
    """The tasks of ``held`` the text changes or removes (or repeats): kept, so named. Not
    ``exact``: compared as the caller reads them, or a guess of a hidden part of a URL would
    be told right or wrong by whether its task is named (see the module docstring)."""
    seen = (lambda d: d) if exact else _as_read
    texts: dict[str, list[str]] = {}
    for d in definitions:
        texts.setdefault(d.key, []).append(seen(d).hash)
    return {k for k, d in held.items() if texts.get(k) != [seen(d).hash]}


def _staying(
    errors: list[DefinitionError],
    hides: bool,
    definitions: list[Definition],
    current: Mapping[str, Definition],
) -> set[str]:
    """The tasks in force the text does not yield that its source keeps holding: those its
    errors name, every one if the text ``hides`` documents (as ``_kept``, before
    ``allow_empty``)."""
    gone = current.keys() - {d.key for d in definitions}
    if hides:
        return set(gone)
    return gone & {e.key for e in errors if e.key}


def _source_of(key: str, current: Mapping[str, Definition], new_source: SourceKind) -> SourceKind:
    """A task in force stays in its source; a new one is added to ``new_source``."""
    found = current.get(key)
    return SourceKind(found.location.source) if found is not None else new_source


def _refusal(
    source: SourceKind,
    before: list[Definition],
    mine: list[Definition],
    holds: int,
    max_tasks: int,
    adds: list[str],
) -> DefinitionError:
    """The pass's words for a file that declares ``mine`` (``sources.taskbound``), and the
    additions not planned. It names no task: the source's tasks in force are kept."""
    where = Location(SourceKind.FILE, BODY, 1, 1)
    state_before = FileState(UNKNOWN, tuple(before) or None, ())
    after = FileState(UNKNOWN, tuple(mine), ())
    said = refused(state_before, after, where, holds, max_tasks).errors[0].message
    shown = ", ".join(adds[:NAMES_SHOWN])
    if len(adds) > NAMES_SHOWN:
        shown += f" and {len(adds) - NAMES_SHOWN:,} more"
    why = said.partition("; ")[0]  # "declares ... (--max-tasks): not applied"
    added = f"new tasks ({shown}) and " if adds else ""
    why += (
        f"; none of {_SOURCE_NAMES[source]} {added}changes is planned, its tasks in force are "
        "kept: a pass refuses each file that grows it past the bound, and the changes and "
        "removals in a file that adds no task do apply, but a text cannot tell its files apart"
    )
    return DefinitionError(where, why)


def _without_jobs(
    definitions: list[Definition], errors: list[DefinitionError]
) -> tuple[list[Definition], list[DefinitionError]]:
    """Without a Kubernetes connection a ``job`` task is the error of its key, as ``run``
    makes it."""
    runnable = [d for d in definitions if d.task.spec.job is None]
    refused_jobs = [
        DefinitionError(d.location, NO_CONNECTION, d.key)
        for d in definitions
        if d.task.spec.job is not None
    ]
    return runnable, [*errors, *refused_jobs]


def location_of(step: Step) -> str:
    """Where the new definition is (an add or an update), or the one removed was."""
    definition = step.desired or step.current
    assert definition is not None
    return str(definition.location)


def changes_of(step: Step) -> list[FieldChange]:
    """An update's changes, field by field, of the definitions as planned (for a caller who
    is not exact, already as that caller reads them: see ``plan_text``)."""
    old = step.current.task.to_document() if step.current else {}
    new = step.desired.task.to_document() if step.desired else {}
    return diff_documents(old, new)


def _as_read(definition: Definition) -> Definition:
    """``definition`` with its http URL as a reader is shown it (``models.for_readers``), and
    the hash of that: what ``plan`` compares. Built without validation: the shown URL (its
    path ``/***``) is a value to compare and show, never one to run."""
    http = definition.task.spec.http
    if http is None:
        return definition
    shown = redact_request_url(http.url)
    if shown == http.url:
        return definition
    spec = definition.task.spec.model_copy(update={"http": http.model_copy(update={"url": shown})})
    task = definition.task.model_copy(update={"spec": spec})
    return dataclasses.replace(definition, task=task, hash=task.spec_hash())
