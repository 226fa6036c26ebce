"""What a newcomer from a Kubernetes CronJob (or a Pod) writes is answered with what to write
instead: a field a CronTask keeps elsewhere names its place, a container-style command says it
is a map, an unquoted `yes` or `8080` where a string goes says how YAML read it, and a value of
a fixed set written in the wrong case names the right one. Through `crontask validate` on real
files, and the same words from the API's wording of a document (`messages.problems`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from reconciler.core.model import CronTask
from reconciler.sources.messages import MAX_SHOWN, MOVES, problems
from tests.helpers import task_doc

HEAD = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata:\n  name: {name}\n"
    'spec:\n  schedule: "0 2 * * *"\n'
)

FILES = {
    # A CronJob converted by hand: its fields, and a Pod's, at the top of spec.
    "a_cronjob.yaml": HEAD.format(name="a")
    + "  jobTemplate:\n"
    + "    spec: {template: {spec: {containers: [{name: a, image: b}]}}}\n"
    + "  successfulJobsHistoryLimit: 3\n"
    + "  env: {A: b}\n"
    + "  args: [date]\n"
    + "  image: busybox\n"
    + "  command: {args: [date]}\n",
    "b_command_list.yaml": HEAD.format(name="b") + '  command: ["/bin/sh", "-c", "date"]\n',
    "c_command_string.yaml": HEAD.format(name="c") + "  command: /usr/bin/backup --full\n",
    "d_http_string.yaml": HEAD.format(name="d") + "  http: https://example.com/\n",
    "e_yaml11.yaml": HEAD.format(name="e")
    + "  command:\n"
    + "    args: [echo, yes, off, 0755, 1.5, 2024-01-01, ~, a: b]\n"
    + "    env: {DEBUG: on, PORT: 8080}\n",
    "f_case.yaml": HEAD.format(name="f").replace("kind: CronTask", "kind: Crontask")
    + "  concurrencyPolicy: forbid\n"
    + "  http: {url: 'http://example.com/', method: post}\n",
}

EXPECTED = [
    "a_cronjob.yaml:7:3: spec.jobTemplate: unknown field (a CronJob's jobTemplate pastes in "
    'unchanged as spec.job: see "From a CronJob" in the README)',
    "a_cronjob.yaml:9:3: spec.successfulJobsHistoryLimit: unknown field "
    "(did you mean 'successfulRunsHistoryLimit'?)",
    "a_cronjob.yaml:10:3: spec.env: unknown field (did you mean 'spec.command.env'?)",
    "a_cronjob.yaml:11:3: spec.args: unknown field (did you mean 'spec.command.args'?)",
    "a_cronjob.yaml:12:3: spec.image: unknown field (a container runs as a Kubernetes Job: "
    'its JobSpec goes under spec.job.spec, see "From a CronJob" in the README)',
    "b_command_list.yaml:7:3: spec.command: a map such as {args: [program, argument, ...]} "
    "(not a list as a container's command: the list goes under args)",
    "c_command_string.yaml:7:3: spec.command: a map such as {args: [program, argument, ...]} "
    "(not a string: the program and each argument are items of args, run without a shell)",
    "d_http_string.yaml:7:3: spec.http: a map of fields such as url (not a string)",
    "e_yaml11.yaml:8:18: spec.command.args[1]: a string, not the boolean true (in YAML, an "
    "unquoted yes, on or true): quote it to mean the string",
    "e_yaml11.yaml:8:23: spec.command.args[2]: a string, not the boolean false (in YAML, an "
    "unquoted no, off or false): quote it to mean the string",
    "e_yaml11.yaml:8:28: spec.command.args[3]: a string, not the number 493: quote it to mean "
    "the string",
    "e_yaml11.yaml:8:34: spec.command.args[4]: a string, not the number 1.5: quote it to mean "
    "the string",
    "e_yaml11.yaml:8:39: spec.command.args[5]: a string, not the date 2024-01-01: quote it to "
    "mean the string",
    "e_yaml11.yaml:8:51: spec.command.args[6]: a string, not null (an empty value): give one, "
    'or "" for an empty string',
    "e_yaml11.yaml:8:54: spec.command.args[7]: a string, not a map (in YAML, an unquoted ': ' "
    "makes one): quote it to mean the string",
    "e_yaml11.yaml:9:11: spec.command.env.DEBUG: a string, not the boolean true (in YAML, an "
    "unquoted yes, on or true): quote it to mean the string",
    "e_yaml11.yaml:9:22: spec.command.env.PORT: a string, not the number 8080: quote it to mean "
    "the string",
    "f_case.yaml:2:1: kind: Input should be 'CronTask' (did you mean 'CronTask'?)",
    "f_case.yaml:7:3: spec.concurrencyPolicy: Input should be 'Allow', 'Forbid' or 'Replace' "
    "(did you mean 'Forbid'?)",
    "f_case.yaml:8:38: spec.http.method: Input should be 'GET', 'HEAD', 'POST', 'PUT', "
    "'PATCH' or 'DELETE' (did you mean 'POST'?)",
]


def test_validate_says_what_to_write_instead(tmp_path: Path) -> None:
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [f"{tmp_path}/{line}" for line in EXPECTED]
    assert "instance of" not in done.stdout


def worded(spec: dict[str, Any]) -> list[str]:
    """A document's problems as the API words them (a 422's errors)."""
    document = task_doc(**{"command": None, **spec})
    document["spec"] = {k: v for k, v in document["spec"].items() if v is not None}
    with pytest.raises(ValidationError) as caught:
        CronTask.model_validate(document)
    return [str(p) for p in problems(caught.value, MAX_SHOWN)[0]]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"command": ["sh", "-c", "date"]},
            "spec.command: a map such as {args: [program, argument, ...]} (not a list as a "
            "container's command: the list goes under args)",
        ),
        ({"job": ["x"]}, "spec.job: a map of fields such as spec (not a list)"),
        (
            {"http": {"url": "http://x/"}, "retry": 3},
            "spec.retry: a map of fields such as limit, backoffSeconds (not the number 3)",
        ),
        (
            {"command": {"args": ["echo", True]}},
            "spec.command.args[1]: a string, not the boolean true (in YAML, an unquoted yes, "
            "on or true): quote it to mean the string",
        ),
        (
            {"command": {"args": ["true"]}, "concurrencyPolicy": "REPLACE"},
            "spec.concurrencyPolicy: Input should be 'Allow', 'Forbid' or 'Replace' "
            "(did you mean 'Replace'?)",
        ),
    ],
)
def test_the_api_words_them_alike(spec: dict[str, Any], expected: str) -> None:
    assert worded(spec) == [expected]


def test_a_document_that_is_not_a_map_names_no_class() -> None:
    with pytest.raises(ValidationError) as caught:
        CronTask.model_validate(["a"])
    (problem,) = problems(caught.value, MAX_SHOWN)[0]
    assert str(problem) == "a map of fields such as apiVersion, kind, metadata, spec (not a list)"


def test_every_move_names_a_field_that_exists() -> None:
    """A hint that named a field the model lacks would send the user to a second error."""
    paths = [re.findall(r"\bspec(?:\.\w+)+", move) for move in MOVES.values()]
    assert all(paths)
    for path in (p for found in paths for p in found):
        model: Any = CronTask
        for part in path.split("."):
            assert model is not None, path  # a field inside a field that is no model
            fields = {f.alias or n: f for n, f in model.model_fields.items()}
            assert part in fields, path
            annotation = fields[part].annotation
            kinds = [annotation, *getattr(annotation, "__args__", ())]
            model = next(
                (k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)), None
            )
