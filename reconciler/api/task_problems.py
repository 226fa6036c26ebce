"""The problems (RFC 9457) that the task routes answer for what a write ran into, and the
``If-Match`` header read as the versions it names: one place that turns the controller's
outcomes (a version that moved on, a definition that does not validate, no room, not yet in
force, another source's key, something in the way) into their status and kind (:func:`refused`);
and what ``If-None-Match`` asks of a write (:func:`creates_only`, :func:`deletable`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Final

from reconciler.api.problems import FieldProblem, ProblemError, field_problems
from reconciler.controller.view import (
    IfMatch,
    InvalidDefinition,
    OwnedElsewhere,
    TaskView,
    VersionMismatch,
)
from reconciler.core.api_tasks import InTheWay, NoRoom, NotInForce
from reconciler.sources.api import TaskTooLarge
from reconciler.sources.messages import dotted

DETAILED: Final = 5  # the failing fields a 422's detail names (``errors`` lists more)


def if_match_versions(header: str | None) -> IfMatch | None:
    """The versions an ``If-Match`` header names (RFC 9110 §13.1.1: ``*`` or a list of
    entity tags; a weak tag never matches, as the strong comparison requires)."""
    if header is None:
        return None
    if header.strip() == "*":
        return frozenset({"*"})
    tags = [t.strip() for t in header.split(",")]
    opaque = [t.removeprefix("W/") for t in tags]
    if not all(len(t) >= 2 and t[0] == t[-1] == '"' for t in opaque):
        problem = FieldProblem(
            location=["header", "If-Match"], message='expected "*" or quoted versions: "v1", "v2"'
        )
        raise ProblemError(
            422, "header.If-Match: not an entity tag", title="Invalid request", errors=[problem]
        )
    # A tag may be listed twice; a weak one is well formed but matches nothing (412), and so
    # does ``"*"``: quoted, it is an opaque tag, which no version is, not the wildcard.
    return frozenset(t[1:-1] for t in tags if not t.startswith("W/") and t != '"*"')


def precondition_failed(exc: VersionMismatch) -> ProblemError:
    return ProblemError(412, str(exc), kind="version-mismatch", title="Precondition Failed")


def invalid(exc: InvalidDefinition, more: int = 0) -> ProblemError:
    """A 422 naming the failing fields; ``more`` counts the problems ``exc`` leaves out."""
    total = len(exc.errors) + more
    detail = "; ".join(
        f"{dotted(e.location)}: {e.message}" if e.location else e.message
        for e in exc.errors[:DETAILED]
    )
    if total > DETAILED:
        detail += f" (and {total - DETAILED} more)"
    return ProblemError(
        422,
        detail or "the CronTask does not validate",
        kind="invalid-definition",
        title="Invalid CronTask",
        errors=field_problems(exc.errors, more=more),
    )


def too_large(exc: TaskTooLarge) -> ProblemError:
    # As a body over the limit is answered (reconciler.api.app): a 413 problem.
    return ProblemError(413, str(exc))


def no_room(exc: NoRoom) -> ProblemError:
    return ProblemError(507, str(exc), kind="no-room", title="Insufficient Storage")


def not_in_force(exc: NotInForce) -> ProblemError:
    # Stored, and applied by the pass the loop retries: sending the write again is not needed.
    return ProblemError(503, str(exc), kind="not-in-force", title="Stored, not yet in force")


def owned_elsewhere(exc: OwnedElsewhere) -> ProblemError:
    return ProblemError(409, str(exc), kind="owned-elsewhere", title="Defined by another source")


def in_the_way(exc: InTheWay) -> ProblemError:
    # Something crontask did not make is where the task's file goes: a human removes it.
    return ProblemError(409, str(exc), kind="in-the-way", title="Something else is in the way")


def not_found(namespace: str, name: str, definition_errors: int = 0) -> ProblemError:
    """No task of that key; with the sources' definition errors counted, as a task whose
    definition has one may be it (never declared: a file broken before its first read)."""
    detail = f"no task {namespace}/{name}"
    if definition_errors:
        many = "s" if definition_errors > 1 else ""
        detail += (
            f" (the sources have {definition_errors} definition error{many}, and a task "
            "whose definition has one is not declared: GET /api/v1/sources lists them)"
        )
    return ProblemError(404, detail)


@contextlib.contextmanager
def refused() -> Iterator[None]:
    """A write's refusals by the controller, raised as their problems."""
    try:
        yield
    except InvalidDefinition as exc:
        raise invalid(exc) from None
    except TaskTooLarge as exc:
        raise too_large(exc) from None
    except NoRoom as exc:
        raise no_room(exc) from None
    except NotInForce as exc:
        raise not_in_force(exc) from None
    except OwnedElsewhere as exc:
        raise owned_elsewhere(exc) from None
    except VersionMismatch as exc:
        raise precondition_failed(exc) from None
    except InTheWay as exc:
        raise in_the_way(exc) from None


def creates_only(header: str | None) -> bool:
    """Whether ``If-None-Match`` asks for a create only (``*``). Another value (an entity tag)
    is not looked at, as before this header was read at all: refusing it would break clients
    that send one today."""
    return header is not None and header.strip() == "*"


def deletable(view: TaskView | None, if_match: IfMatch | None, unless: IfMatch) -> IfMatch | None:
    """The ``If-Match`` of a DELETE with ``If-None-Match`` (``unless``): the version the task
    was read at, if neither header refuses it (412), so that the check and the removal are one
    step under the store's lock: a task written meanwhile, perhaps to a version ``unless``
    names, is a 412, never deleted. No task when read: the delete must find none either
    (``frozenset()`` matches none: 404 if there is still none, 412 for one created meanwhile,
    perhaps at a version ``unless`` names). A task with no version (another source's, a
    stored entry that does not read) matches no tag, and the delete answers as without the
    header; ``*`` refuses it (412)."""
    if view is None:
        return frozenset()
    if view.version is None:
        return frozenset() if "*" in unless else if_match
    current = view.version
    if "*" in unless or current in unless:
        said = "exists" if "*" in unless else f"is at version {current}, which it names"
        detail = f"not deleted: task {view.key} {said} (If-None-Match)"
        raise ProblemError(412, detail, kind="version-mismatch", title="Precondition Failed")
    if if_match is not None and "*" not in if_match and current not in if_match:
        return frozenset()  # the delete says what version the task is at
    return frozenset({current})
