"""A CronTask whose spec has several errors says all of them in its conditions (and its
``InvalidSpec`` Event, whose words are the same): the first alone, fixed, only gave way to the
next. Bounded: five at most, those after the first within 1 KiB, the rest counted."""

from __future__ import annotations

from datetime import UTC, datetime

from reconciler.core.desired import DefinitionError, DesiredState, Location, SourceKind
from reconciler.core.status import (
    INVALID_MORE_CHARS,
    StatusInputs,
    derive_status,
    task_state,
    unused_spec,
)

T0 = datetime(2027, 1, 1, 12, 0, 0, tzinfo=UTC)
KEY = "default/two"
WHERE = Location(SourceKind.KUBERNETES, KEY)
SCHEDULE = "spec.schedule: minute field: 61 is out of range 0-59"
ZONE = "spec.timeZone: unknown time zone 'Mars/Olympus'"


def ready_message(*messages: str, key: str = KEY) -> str:
    errors = tuple(DefinitionError(WHERE, m, key) for m in messages)
    state = task_state(KEY, DesiredState(tasks={}, errors=errors), None)
    assert state.invalid is not None
    # The Event says what the conditions say, less what is kept running.
    assert unused_spec(state.invalid, state.invalid_kind)[1] == f"spec is invalid: {state.invalid}"
    status = derive_status({}, StatusInputs(1, state), T0)
    (ready,) = [c for c in status["conditions"] if c["type"] == "Ready"]
    message = ready["message"]
    assert isinstance(message, str)
    return message


def test_both_errors_are_said() -> None:
    assert ready_message(SCHEDULE, ZONE) == (
        f"spec is invalid: {SCHEDULE}; {ZONE}; nothing is scheduled"
    )


def test_one_error_is_said_as_before() -> None:
    assert ready_message(SCHEDULE) == f"spec is invalid: {SCHEDULE}; nothing is scheduled"


def test_another_task_s_errors_are_not_said() -> None:
    errors = (DefinitionError(WHERE, SCHEDULE, KEY), DefinitionError(WHERE, ZONE, "default/one"))
    state = task_state(KEY, DesiredState(tasks={}, errors=errors), None)
    assert state.invalid == SCHEDULE


def test_five_at_most_the_rest_counted() -> None:
    messages = [f"spec.x{n}: wrong" for n in range(12)]
    said = ready_message(*messages)
    assert said == (
        "spec is invalid: " + "; ".join(messages[:5]) + "; and 7 more; nothing is scheduled"
    )


def test_long_errors_after_the_first_are_counted_not_said() -> None:
    first = "spec.command: " + "a" * 5000  # the first is said whole, as it always was
    long = "spec.y: " + "b" * INVALID_MORE_CHARS
    said = ready_message(first, "spec.z: short", long, "spec.w: short too")
    assert said == (f"spec is invalid: {first}; spec.z: short; and 2 more; nothing is scheduled")
