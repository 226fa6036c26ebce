"""One wording for a definition that does not validate: the same mistake gives the same
message from a file and from a custom resource, and out-of-range values say the range."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.core.model import CronTask
from reconciler.sources.documents import parse_text
from reconciler.sources.messages import problems
from tests.helpers import task_doc


def validate(**spec: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        CronTask.model_validate(task_doc(**spec))
    return [str(p) for p in problems(caught.value)]


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
