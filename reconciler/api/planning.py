"""What a text of CronTask documents would change if it held the tasks crontask reads from
files and git: the work of ``POST /api/v1/plan``, as ``crontask plan PATH --server URL`` does
it from the other side. Reads and changes nothing of the running crontask.

- The text is read as a task file is (``sources.documents.parse_text``: the same YAML, bounds
  and messages), at the location ``body``: ``body:6:16: spec.schedule: ...``. Without a
  Kubernetes connection a ``job`` task is the error of its key, as ``run`` makes it.
- Its tasks are settled with those in force from the other sources (the API, custom
  resources) as a pass settles them, so a key both define is reported as the conflict the
  pass would report, and the side that would win is the one planned.
- They are planned (``core.plan.plan``) against the tasks in force from files and git. A task
  a broken document still names is kept as it is, as ``run`` keeps a broken file's tasks; an
  empty set of tasks removes nothing unless ``allow_empty``, as for ``run``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Final

from reconciler.api.models import for_readers
from reconciler.controller.jobs import NO_CONNECTION
from reconciler.core.desired import (
    Definition,
    DefinitionError,
    Location,
    SourceKind,
    assemble,
)
from reconciler.core.plan import FieldChange, Plan, Step, diff_documents, plan
from reconciler.core.urls import redact_request_url
from reconciler.sources.documents import parse_text

PLANNED_KINDS: Final = frozenset({SourceKind.FILE, SourceKind.GIT})
BODY: Final = "body"  # the location of the posted text in its problems and steps
URL_PATH: Final = "spec.http.url"


@dataclasses.dataclass(frozen=True, slots=True)
class TextPlan:
    plan: Plan
    kept: tuple[str, ...]  # tasks kept as they are: a broken document names them
    problems: tuple[str, ...]  # every error and conflict of the text, as `validate` words it


def plan_text(
    data: bytes, in_force: Mapping[str, Definition], *, jobs: bool, allow_empty: bool
) -> TextPlan:
    """See the module docstring. Never raises for a bad text: its problems say what is wrong."""
    definitions, errors = _read(data, jobs=jobs)
    others = [d for d in in_force.values() if d.location.source not in PLANNED_KINDS]
    settled = assemble([*definitions, *others], errors)
    desired = {k: d for k, d in settled.tasks.items() if d.location.source in PLANNED_KINDS}
    current = {k: d for k, d in in_force.items() if d.location.source in PLANNED_KINDS}
    named = {e.key for e in errors if e.key}
    kept = tuple(sorted(k for k in named if k in current and k not in desired))
    desired.update((k, current[k]) for k in kept)
    found = plan(desired, current, allow_empty=allow_empty)
    return TextPlan(found, kept, tuple(settled.problems))


def _read(data: bytes, *, jobs: bool) -> tuple[list[Definition], list[DefinitionError]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:  # worded and placed as for a file (sources.files)
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - data.rfind(b"\n", 0, err.start)
        where = Location(SourceKind.FILE, BODY, line, column)
        return [], [DefinitionError(where, f"not UTF-8: byte 0x{data[err.start]:02x}")]
    parsed = parse_text(text, BODY)
    if jobs:
        return parsed.definitions, parsed.errors
    runnable = [d for d in parsed.definitions if d.task.spec.job is None]
    refused = [
        DefinitionError(d.location, NO_CONNECTION, d.key)
        for d in parsed.definitions
        if d.task.spec.job is not None
    ]
    return runnable, [*parsed.errors, *refused]


def location_of(step: Step) -> str:
    """Where the new definition is (an add or an update), or the one removed was."""
    definition = step.desired or step.current
    assert definition is not None
    return str(definition.location)


def changes_of(step: Step, *, exact: bool) -> list[FieldChange]:
    """An update's changes, field by field. Not ``exact``: each side as a caller who may not
    write tasks reads it (``models.for_readers``: an http URL without its secrets), with a URL
    changed only where that hides it still listed, so that an update never looks like none."""
    old = step.current.task.to_document() if step.current else {}
    new = step.desired.task.to_document() if step.desired else {}
    if exact:
        return diff_documents(old, new)
    found = diff_documents(for_readers(old), for_readers(new))
    old_url, new_url = _url(old), _url(new)
    if old_url and new_url and old_url != new_url and all(c.path != URL_PATH for c in found):
        found.append(
            FieldChange(URL_PATH, redact_request_url(old_url), redact_request_url(new_url))
        )
        found.sort(key=lambda c: c.path)
    return found


def _url(document: Mapping[str, Any]) -> str | None:
    spec = document.get("spec")
    http = spec.get("http") if isinstance(spec, Mapping) else None
    url = http.get("url") if isinstance(http, Mapping) else None
    return url if isinstance(url, str) else None
