"""What a text of CronTask documents would change if it held the tasks crontask reads from
files and git: the work of ``POST /api/v1/plan``, as ``crontask plan PATH --server URL`` does
it from the other side. Reads and changes nothing of the running crontask.

- The text is read as a task file is (``sources.documents.parse_text``: the same YAML, bounds
  and messages), at the location ``body``: ``body:6:16: spec.schedule: ...``. A JSON body is
  one CronTask, read as ``POST /api/v1/tasks`` reads one (``params.parse_object``: YAML 1.1
  would read ``3e2`` as a string and refuse a surrogate pair's escapes) and validated as a
  file's document, every problem at ``body:1:1``. Without a Kubernetes connection a ``job``
  task is the error of its key, as ``run`` makes it.
- The text is bounded by the server's ``--max-tasks`` as a pass bounds a file that replaced
  the tasks in force from files and git (``sources.taskbound``, its words): past it, nothing
  of the text is applied and every task in force is kept as it is.
- Its tasks are settled with those in force from the other sources (the API, custom
  resources) as a pass settles them, so a key both define is reported as the conflict the
  pass would report, and the side that would win is the one planned.
- They are planned (``core.plan.plan``) against the tasks in force from files and git. A task
  a broken document still names is kept as it is, as ``run`` keeps a broken file's tasks; an
  error that names no task (a YAML syntax error, a bound broken, not UTF-8, a document without
  a valid name) may hide any of them, so then none of them is removed: each one the text does
  not yield is kept (its adds and changes are still planned). An empty set of tasks removes
  nothing unless ``allow_empty``, as for ``run``: a text that yields nothing holds them (the
  route's default is the server's own ``--allow-empty``).
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

from pydantic import ValidationError

from reconciler.api.params import BodyProblem, parse_object
from reconciler.controller.jobs import NO_CONNECTION
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
from reconciler.sources.documentkeys import key_of
from reconciler.sources.documents import parse_text, unexpected
from reconciler.sources.filestate import UNKNOWN, FileState
from reconciler.sources.messages import MAX_SHOWN, Problem, more_problems, problems
from reconciler.sources.taskbound import refused

PLANNED_KINDS: Final = frozenset({SourceKind.FILE, SourceKind.GIT})
BODY: Final = "body"  # the location of the posted text in its problems and steps


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
) -> TextPlan:
    """See the module docstring. Never raises for a bad text: its problems say what is wrong.
    Not ``exact``: the plan, its steps' definitions too, is of the tasks as readers see them.
    ``max_tasks``: the server's ``--max-tasks`` (None: no bound). ``as_json``: ``data`` is
    one CronTask as JSON (``_read_json``), not a task file's text."""
    current = {k: d for k, d in in_force.items() if d.location.source in PLANNED_KINDS}
    definitions, errors = _read(data, as_json=as_json)
    refusal = _past_bound(definitions, current, max_tasks)
    if refusal is not None:  # as a pass refuses the file: nothing of it is applied
        definitions, errors = [], [*errors, refusal]
    if not jobs:
        definitions, errors = _without_jobs(definitions, errors)
    others = [d for d in in_force.values() if d.location.source not in PLANNED_KINDS]
    settled = assemble([*definitions, *others], errors)
    desired = {k: d for k, d in settled.tasks.items() if d.location.source in PLANNED_KINDS}
    if refusal is not None:
        kept = tuple(sorted(current))  # each one stays as it is, carrying the refusal
    else:
        kept = _kept(errors, desired, current, allow_empty=allow_empty)
    desired.update((k, current[k]) for k in kept)
    if not exact:
        desired = {k: _as_read(d) for k, d in desired.items()}
        current = {k: _as_read(d) for k, d in current.items()}
    found = plan(desired, current, allow_empty=allow_empty)
    return TextPlan(found, kept, tuple(settled.problems))


def _kept(
    errors: list[DefinitionError],
    desired: Mapping[str, Definition],
    current: Mapping[str, Definition],
    *,
    allow_empty: bool,
) -> tuple[str, ...]:
    """The tasks in force that the text does not yield and ``run`` would keep: those a broken
    document names; all of them when an error names no task (a syntax error, a bound, not
    UTF-8, a document without a valid name), as the documents it hides may be any of them and
    ``run`` keeps a broken file whole. A text that yields nothing holds them instead, unless
    ``allow_empty`` (``crontask plan FILE --server`` says the same of such a file)."""
    gone = current.keys() - desired.keys()
    if any(e.key is None for e in errors) and (desired or allow_empty):
        return tuple(sorted(gone))
    return tuple(sorted(gone & {e.key for e in errors if e.key}))


def _read(data: bytes, *, as_json: bool) -> tuple[list[Definition], list[DefinitionError]]:
    if as_json:
        return _read_json(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:  # worded and placed as for a file (sources.files)
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - data.rfind(b"\n", 0, err.start)
        where = Location(SourceKind.FILE, BODY, line, column)
        return [], [DefinitionError(where, f"not UTF-8: byte 0x{data[err.start]:02x}")]
    parsed = parse_text(text, BODY)
    return parsed.definitions, parsed.errors


def _read_json(data: bytes) -> tuple[list[Definition], list[DefinitionError]]:
    """One CronTask object, read as ``POST /api/v1/tasks`` reads one (``params.parse_object``:
    JSON, not YAML 1.1, which reads ``3e2`` as a string and refuses a surrogate pair's
    escapes; the same bounds) and validated as a file's document is, its problems worded as
    a file's (``sources.messages``). Every problem is at ``body:1:1``."""
    where = Location(SourceKind.FILE, BODY, 1, 1)
    try:
        document = parse_object(data)
    except BodyProblem as problem:  # no task named: as a YAML syntax error
        return [], [DefinitionError(where, str(Problem(problem.path, problem.message)))]
    key = key_of(document)
    try:
        task = CronTask.model_validate(document)  # as a file's document (documents._document)
    except ValidationError as err:
        said, more = problems(err, MAX_SHOWN)
        errors = [DefinitionError(where, str(p), key) for p in said]
        if more:
            errors.append(DefinitionError(where, more_problems(more, MAX_SHOWN), key))
        return [], errors
    except Exception as err:  # a bug of crontask's, worded and logged as for a file
        return [], [unexpected(err, where, key)]
    return [Definition.of(task, where)], []


def _past_bound(
    definitions: list[Definition], current: Mapping[str, Definition], max_tasks: int | None
) -> DefinitionError | None:
    """The error a pass would refuse the text with if it were a file that replaced the tasks
    in force from files and git (``sources.taskbound``: every definition counts, a job task
    too, as the folder source counts them before they are run or refused), or None. As for
    a file, a text that adds nothing is never refused: the bound keeps a source from growing
    past it, not from keeping what it holds."""
    declared = len(definitions)
    if max_tasks is None or declared <= max(len(current), max_tasks):
        return None
    where = Location(SourceKind.FILE, BODY, 1, 1)
    before = FileState(UNKNOWN, tuple(current.values()) or None, ())
    after = FileState(UNKNOWN, tuple(definitions), ())
    return refused(before, after, where, declared, max_tasks).errors[0]


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
