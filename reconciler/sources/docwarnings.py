"""The warnings of documents (``documents``): a document ignored that its author likely meant
as a task, said at its place instead of a task that silently never comes.

A Kubernetes CronJob (``pasted_cronjob``) is another group's object, ignored as any, but it is
the one a user coming from CronJobs pastes into a task folder: ``CRONJOB`` says so.
A field spelled by its Python name (``time_zone``), read for now, is one too
(``pythonnames``).

A file's warnings are logged (``log_warnings``) and kept on its state 20 at most, then one that
stands for all the others (``DocumentWarning.stands_for``): ``crontask validate`` shows as
many, says there are more, and counts them all (``survey``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import yaml

from reconciler.core.desired import Location
from reconciler.sources.yamlpositions import Lines

LOGGED_WARNINGS = 20  # of one file, at each version read
CRONJOB = (
    "a Kubernetes CronJob is not read by crontask: convert it to a CronTask"
    ' (README, "From a CronJob")'
)
# The warnings of documents (``log_warnings``; ``survey`` prints them from ``FileState``). They
# reach the log a command configures (``crontask run``'s); one that configures none (``plan``)
# does not print them bare, without their place, as logging's last resort would.
WARNINGS = "crontask.sources.documents"
logging.getLogger(WARNINGS).addHandler(logging.NullHandler())
Unplaced = tuple[int, int, str]  # a warning's line and column in its file, and its message


@dataclasses.dataclass(frozen=True, slots=True)
class DocumentWarning:
    """What a file's author should change though it is not an error (a pasted CronJob, a
    field's Python name), as ``crontask validate`` prints it (``file:line:col: warning: ...``)."""

    location: Location
    message: str
    # The warnings of its file this one counts for: the last a file's state keeps counts for
    # those not kept too (``log_warnings``), so that a count of them stays exact (``counted``).
    stands_for: int = 1

    def __str__(self) -> str:
        return f"{self.location}: warning: {self.message}"


def pasted_cronjob(api_version: Any, kind: Any) -> bool:
    """Whether an object is a Kubernetes CronJob (``batch/v1``, ``batch/v1beta1``: group
    ``batch``), which crontask does not read (``CRONJOB``)."""
    group = api_version.rpartition("/")[0] if isinstance(api_version, str) else None
    return kind == "CronJob" and group == "batch"


def document_warning(node: yaml.Node, api_version: Any, kind: Any, lines: Lines) -> list[Unplaced]:
    """The warning of a document of another group, at its start: a CronJob's, or none."""
    if not pasted_cronjob(api_version, kind):
        return []
    return [(*lines.place(node.start_mark), CRONJOB)]


def placed(
    warnings: Iterable[Unplaced], at: Callable[[int, int], Location]
) -> list[DocumentWarning]:
    """``warnings`` found in a file, each at its Location there (``at(line, column)``)."""
    return [DocumentWarning(at(line, column), message) for line, column, message in warnings]


def log_warnings(warnings: Sequence[DocumentWarning]) -> tuple[DocumentWarning, ...]:
    """Log each warning with its place, the first ``LOGGED_WARNINGS`` of a file (a file of
    thousands of CronJobs is not thousands of lines at each edit). The directory source logs a
    file's warnings for each version of it that it reads; a resync reads no unchanged file.
    Returns those a file's state keeps (bounded memory): the first, and one to say "more",
    which stands for every warning past them."""
    for warning in warnings[:LOGGED_WARNINGS]:
        where = warning.location
        fields = {"location": str(where)}
        if where.revision:
            fields["revision"] = where.revision
        logging.getLogger(WARNINGS).warning(warning.message, extra={"fields": fields})
    if len(warnings) <= LOGGED_WARNINGS:
        return tuple(warnings)
    hidden = len(warnings) - LOGGED_WARNINGS
    more = {"location": warnings[0].location.path, "more": hidden}
    logging.getLogger(WARNINGS).warning("more warnings not logged", extra={"fields": more})
    last = dataclasses.replace(warnings[LOGGED_WARNINGS], stands_for=hidden)
    return (*warnings[:LOGGED_WARNINGS], last)


def counted(kept: Iterable[DocumentWarning]) -> int:
    """How many warnings a file has, of those its state keeps (``log_warnings``)."""
    return sum(warning.stands_for for warning in kept)
