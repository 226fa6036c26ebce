"""One wording for a definition that does not validate: the same mistake gives the same
message from a file and from a custom resource, and out-of-range values say the range."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.core.model import CronTask
from reconciler.sources import messages
from reconciler.sources.documents import parse_text
from reconciler.sources.messages import MAX_SHOWN, problems
from tests.helpers import task_doc


def validate(**spec: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        CronTask.model_validate(task_doc(**spec))
    found, more = problems(caught.value, MAX_SHOWN)
    assert more == 0
    return [str(p) for p in found]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"retry": {"limit": 200}}, "spec.retry.limit: 200 is out of range: allowed 0 to 100"),
        (
            {"startingDeadlineSeconds": 0},
            "spec.startingDeadlineSeconds: 0 is out of range: allowed 1 to 31536000",
        ),
        (
            {"retry": {"backoffSeconds": 3.78e16}},
            "spec.retry.backoffSeconds: 3.78e+16 is out of range: allowed 0 to 86400",
        ),
        (
            {"jitterSeconds": 3601},
            "spec.jitterSeconds: 3601 is out of range: allowed 0 to 3600",
        ),
        ({"retyr": {}}, "spec.retyr: unknown field (did you mean 'retry'?)"),
    ],
)
def test_messages_say_the_allowed_range_and_suggest_names(
    spec: dict[str, Any], expected: str
) -> None:
    assert validate(**spec) == [expected]


def test_a_file_and_a_resource_word_the_same_mistake_the_same_way() -> None:
    text = (
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: t}\n"
        'spec:\n  schedule: "* * * * *"\n  retry: {limit: 200}\n  command: {args: ["true"]}\n'
    )
    (from_file,) = parse_text(text, "t.yaml").errors
    assert from_file.message == "spec.retry.limit: 200 is out of range: allowed 0 to 100"
    assert validate(retry={"limit": 200}) == [from_file.message]


def test_only_the_first_problems_are_worded_and_the_rest_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Wording an unknown field looks for a close name: 80 000 of them took seconds.
    worded: list[Any] = []
    real = messages.message

    def counted(item: Any) -> str:
        worded.append(item)
        return real(item)

    monkeypatch.setattr(messages, "message", counted)
    document = task_doc()
    document["spec"].update({f"unknown{i}": 1 for i in range(1000)})
    with pytest.raises(ValidationError) as caught:
        CronTask.model_validate(document)
    found, more = problems(caught.value, MAX_SHOWN)
    assert len(found) == len(worded) == MAX_SHOWN
    assert more == 1000 - MAX_SHOWN
    assert str(found[0]) == "spec.unknown0: unknown field"
