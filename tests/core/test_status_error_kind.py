"""A CronTask's unused spec gets its reason from its error's kind, never from its words.

``TaskLimit`` (its source is past ``--max-tasks``) was told from ``InvalidSpec`` by how the
message began: a spec error that happened to begin with those words said ``TaskLimit`` (and
left out "spec is invalid"), and a refusal said in other words would have said ``InvalidSpec``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.core.desired import DefinitionError, DesiredState, ErrorKind, Location, SourceKind
from reconciler.core.status import StatusInputs, derive_status, task_state, unused_spec

T0 = datetime(2027, 1, 1, 12, 0, 0, tzinfo=UTC)
KEY = "ops/m3"
WHERE = Location(SourceKind.KUBERNETES, KEY)
# The words the refusal of a CronTask past --max-tasks begins with.
REFUSAL_WORDS = "would take this source past its bound of 2 tasks (--max-tasks)"


@pytest.mark.parametrize(
    ("error", "reason", "said"),
    [
        (
            DefinitionError(WHERE, "no room: the source is full", KEY, ErrorKind.TASK_LIMIT),
            "TaskLimit",
            "no room: the source is full",
        ),
        (
            DefinitionError(WHERE, f"{REFUSAL_WORDS}: a spec's own words", KEY),
            "InvalidSpec",
            f"spec is invalid: {REFUSAL_WORDS}: a spec's own words",
        ),
    ],
    ids=["limit-in-other-words", "invalid-in-the-limit-s-words"],
)
def test_the_reason_is_the_error_s_kind(error: DefinitionError, reason: str, said: str) -> None:
    state = task_state(KEY, DesiredState(tasks={}, errors=(error,)), None)
    status = derive_status({}, StatusInputs(1, state), T0)
    found = {c["type"]: (c["status"], c["reason"], c["message"]) for c in status["conditions"]}
    message = f"{said}; nothing is scheduled"
    assert found == {"Ready": ("False", reason, message), "Stalled": ("True", reason, message)}
    # The Warning Event says the same (its reason and words are ``unused_spec``'s).
    assert unused_spec(error.message, error.kind) == (reason, said)
