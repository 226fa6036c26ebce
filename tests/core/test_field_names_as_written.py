"""A field is named as the resource spells it (``concurrencyPolicy``). Every release before
took the Python name of the model's attribute too (``concurrency_policy``), which the JSON
schema refuses and the API server drops from a CronTask resource (the same file applied with
kubectl ran as Forbid, in crontask's folder). A task file that spells a field so is read as
before, for now, with a warning at the field's key (an upgrade must not leave every such task
unscheduled); the models themselves, as an API request's body is validated, refuse it. Through
``crontask validate`` on a real file, ``parse_text`` (the values taken) and the models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.core.model import ConcurrencyPolicy, CronTask
from reconciler.sources.documents import parse_text
from reconciler.sources.messages import MAX_SHOWN, problems
from tests.helpers import crontask_cli, task_doc

FILE = """apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: snake}
spec:
  schedule: "0 12 * * *"
  concurrency_policy: Allow
  starting_deadline_seconds: 5
  retry: {backoff_seconds: 3}
  command: {args: ["true"], working_dir: /srv}
"""


def said(name: str, alias: str) -> str:
    return (
        f"write {alias}: the spelling {name} is read for now, refused from a later release,"
        " and a CronTask applied with kubectl drops it"
    )


def test_validate_reads_the_python_names_and_warns_at_each(tmp_path: Path) -> None:
    path = tmp_path / "snake.yaml"
    path.write_text(FILE)
    done = crontask_cli("validate", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        f"{path}:6:3: warning: spec.concurrency_policy: "
        + said("concurrency_policy", "concurrencyPolicy"),
        f"{path}:7:3: warning: spec.starting_deadline_seconds: "
        + said("starting_deadline_seconds", "startingDeadlineSeconds"),
        f"{path}:8:11: warning: spec.retry.backoff_seconds: "
        + said("backoff_seconds", "backoffSeconds"),
        f"{path}:9:29: warning: spec.command.working_dir: " + said("working_dir", "workingDir"),
        "ok: 1 file, 1 task, 4 warnings",
    ]


def test_the_values_written_so_are_taken() -> None:
    parsed = parse_text(FILE, "snake.yaml")
    assert parsed.errors == []
    (spec,) = [d.task.spec for d in parsed.definitions]
    assert spec.concurrency_policy is ConcurrencyPolicy.ALLOW
    assert spec.starting_deadline_seconds == 5
    assert spec.retry is not None
    assert spec.retry.backoff_seconds == 3
    assert spec.command is not None
    assert spec.command.working_dir == "/srv"
    assert len(parsed.warnings) == 4


def test_a_key_taken_as_written_is_never_respelled() -> None:
    # An env variable named as a field's Python name, in a mapping shared by a YAML alias with
    # a place where the same key is a field's Python name: each place read as it stands (the
    # error is at the key the alias brings, where the anchor has it).
    text = FILE.replace(
        '  command: {args: ["true"], working_dir: /srv}\n',
        '  command: {args: ["true"], env: &e {value_from: x}}\n'
        "  http: {url: http://x/, headers: [{name: A, value_from: *e}]}\n",
    )
    parsed = parse_text(text, "snake.yaml")
    said_at = [str(e) for e in parsed.errors]
    assert said_at == ["snake.yaml:9:38: spec.http.headers[0].value_from.value_from: unknown field"]
    warned = [str(w).split(": write ")[0] for w in parsed.warnings]  # in the order of the file
    assert "snake.yaml:10:46: warning: spec.http.headers[0].value_from" in warned, warned
    assert not any("spec.command.env" in w for w in warned), warned


def test_both_spellings_of_one_field_are_refused_as_before() -> None:
    text = FILE.replace(
        "  concurrency_policy: Allow\n",
        "  concurrency_policy: Allow\n  concurrencyPolicy: Forbid\n",
    )
    parsed = parse_text(text, "snake.yaml")
    assert [str(e) for e in parsed.errors] == [
        "snake.yaml:6:3: spec.concurrency_policy: unknown field (did you mean 'concurrencyPolicy'?)"
    ]


def test_a_task_refused_for_another_field_says_where_the_file_has_it() -> None:
    text = FILE.replace("  retry: {backoff_seconds: 3}\n", "  retry: {backoff_seconds: -3}\n")
    parsed = parse_text(text, "snake.yaml")
    assert [str(e).split(": ")[:2] for e in parsed.errors] == [
        ["snake.yaml:8:11", "spec.retry.backoff_seconds"]
    ]
    assert len(parsed.warnings) == 4


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"time_zone": "Europe/Berlin"}, "spec.time_zone"),
        ({"jitter_seconds": 5}, "spec.jitter_seconds"),
        ({"successful_runs_history_limit": 5}, "spec.successful_runs_history_limit"),
        (
            {"command": None, "http": {"url": "http://x/", "expect_status": "200"}},
            "spec.http.expect_status",
        ),
        (
            {
                "command": None,
                "http": {
                    "url": "http://x/",
                    "headers": [{"name": "A", "value_from": {"env": "B"}}],
                },
            },
            "spec.http.headers[0].value_from",
        ),
    ],
)
def test_the_models_refuse_them_as_an_api_request_is(spec: dict[str, Any], field: str) -> None:
    document = task_doc(**spec)
    document["spec"] = {k: v for k, v in document["spec"].items() if v is not None}
    with pytest.raises(ValidationError) as caught:
        CronTask.model_validate(document)
    said = [str(p) for p in problems(caught.value, MAX_SHOWN)[0]]
    assert said[0].startswith(f"{field}: unknown field"), said


def test_api_version_is_refused_as_written_in_python() -> None:
    document = task_doc()
    document["api_version"] = document.pop("apiVersion")
    with pytest.raises(ValidationError):
        CronTask.model_validate(document)


def test_an_empty_python_name_is_refused_by_the_models_and_warned_of_in_a_file() -> None:
    """``time_zone:`` with nothing after it: an empty value of a field that may be left out is
    left out, but only as the resource spells the field; the Python name is refused (by the
    API) or warned of (in a file), as with a value."""
    document = task_doc()
    document["spec"]["time_zone"] = None
    with pytest.raises(ValidationError):
        CronTask.model_validate(document)
    text = FILE.replace("  concurrency_policy: Allow\n", "  time_zone:\n")
    parsed = parse_text(text, "snake.yaml")
    assert parsed.errors == []
    first = parsed.warnings[0].message
    assert first == "spec.time_zone: " + said("time_zone", "timeZone"), parsed.warnings


def test_api_version_in_python_is_said_to_be_refused_by_kubectl() -> None:
    """kubectl drops no apiVersion: it refuses the object ('apiVersion not set')."""
    text = FILE.replace("apiVersion:", "api_version:")
    (warning,) = [w for w in parse_text(text, "snake.yaml").warnings if "api_" in w.message]
    assert warning.message == (
        "api_version: write apiVersion: the spelling api_version is read for now, refused from"
        " a later release, and kubectl refuses a CronTask without apiVersion"
    )
