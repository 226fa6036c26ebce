"""The run-now annotation is a request to the running crontask, not part of the task: a value
of any length leaves a valid task valid (crontask refuses a long one where it reads it, from
the object), and it never sits in the task's annotations. crontask's other annotations are
checked as any."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from reconciler.core.fields import MAX_TEXT
from reconciler.core.model import CronTask
from reconciler.core.status import RUN_NOW_ANNOTATION
from tests.helpers import task_doc


def test_a_run_now_value_of_any_length_leaves_the_task_valid() -> None:
    doc = task_doc()
    doc["metadata"]["annotations"] = {RUN_NOW_ANNOTATION: "y" * 40_000, "team": "ops"}
    task = CronTask.model_validate(doc)
    assert task.metadata.annotations == {"team": "ops"}


def test_another_annotation_past_the_bound_is_still_an_error() -> None:
    doc = task_doc()
    doc["metadata"]["annotations"] = {"crontask.dev/note": "y" * (MAX_TEXT + 1)}
    with pytest.raises(ValidationError, match="annotations"):
        CronTask.model_validate(doc)
