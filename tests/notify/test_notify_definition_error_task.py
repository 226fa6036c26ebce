"""A ``definitionError`` message names its task when every error it tells names the same one
(a broken definition that still says its key, or a key defined twice), against a real HTTP
receiver: ``task`` then holds the key and where the first error is, and the summary says it.
Errors of several tasks, or one that names none, leave ``task`` null."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.core.desired import DefinitionError, DesiredState, Location
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from tests.notify.receiver import receiving
from tests.notify.test_notifier import SECRET, config, running, until

ROUTE = "  - receiver: hook\n    events: [definitionError]\n"
SCHEDULE = DefinitionError(Location("git", "ops.yaml", 3, 5), "spec.schedule: bad", "ops/a")
COMMAND = DefinitionError(Location("git", "ops.yaml", 7, 9), "spec.command: empty", "ops/a")
OTHER = DefinitionError(Location("git", "b.yaml", 1, 1), "spec: bad", "ops/b")
NAMELESS = DefinitionError(Location("git", "c.yaml", 1, 1), "not YAML")


def told(tmp_path: Path, *errors: DefinitionError) -> dict[str, Any]:
    """The one definitionError message the errors of a pass make."""
    with receiving(SECRET) as receiver:
        notifier = Notifier(config(tmp_path, receiver.url, route=ROUTE), metrics=Metrics())

        async def body() -> None:
            notifier.after_pass(DesiredState({}, errors=errors))
            await until(receiver, 1)

        running(notifier, body)
    (message,) = receiver.received
    sent: dict[str, Any] = message.json
    return sent


def test_the_errors_of_one_task_name_it(tmp_path: Path) -> None:
    body = told(tmp_path, SCHEDULE, COMMAND)
    assert body["task"] == {
        "key": "ops/a",
        "namespace": "ops",
        "name": "a",
        "source": {"kind": "git", "location": "ops.yaml:3:5"},
    }
    assert body["summary"] == "2 new definition errors in ops/a"
    assert body["run"] is None


@pytest.mark.parametrize(
    "errors",
    [(SCHEDULE, OTHER), (SCHEDULE, NAMELESS), (NAMELESS,)],
    ids=["two", "nameless", "none"],
)
def test_errors_of_several_tasks_or_of_none_name_no_task(
    tmp_path: Path, errors: tuple[DefinitionError, ...]
) -> None:
    body = told(tmp_path, *errors)
    assert body["task"] is None
    assert body["summary"] == f"{len(errors)} new definition error{'s' * (len(errors) > 1)}"
