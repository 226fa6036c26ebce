"""An empty (or blank) ``workingDir`` is refused when the task is read: it is no folder, and
every run of it failed to start. Left out (or null), the command runs in crontask's folder."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.core.actions import CommandAction
from reconciler.core.model import CronTask, json_schema
from reconciler.sources.messages import problems


def task(command: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": "a"},
        "spec": {"schedule": "@daily", "command": command},
    }


@pytest.mark.parametrize("path", ["", " ", "\t \n"])
def test_an_empty_working_dir_is_refused_in_words_that_say_what_to_do(path: str) -> None:
    with pytest.raises(ValidationError) as err:
        CronTask.model_validate(task({"args": ["true"], "workingDir": path}))
    assert [str(p) for p in problems(err.value, 20)[0]] == [
        "spec.command.workingDir: must not be empty (leave it out to run in crontask's folder)"
    ]


@pytest.mark.parametrize("given", [{}, {"workingDir": None}])
def test_left_out_the_command_runs_where_crontask_does(given: dict[str, Any]) -> None:
    assert CronTask.model_validate(task({"args": ["true"], **given})).spec.command == (
        CommandAction(args=["true"])
    )


def test_a_folder_named_is_kept_as_written() -> None:
    command = CronTask.model_validate(task({"args": ["true"], "workingDir": " /srv "})).spec.command
    assert command is not None
    assert command.working_dir == " /srv "


def test_the_schema_says_so() -> None:
    field = json_schema()["$defs"]["CommandAction"]["properties"]["workingDir"]
    assert field["anyOf"][0]["minLength"] == 1
