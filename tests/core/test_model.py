"""The CronTask model: defaults, strictness, hashing, and the committed JSON Schema."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from reconciler.core import actions
from reconciler.core.model import ConcurrencyPolicy, CronTask, json_schema
from tests.helpers import task_doc

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_follow_cronjob_except_forbid() -> None:
    spec = CronTask.model_validate(task_doc()).spec
    assert spec.time_zone == "UTC"
    assert spec.suspend is False
    assert spec.concurrency_policy is ConcurrencyPolicy.FORBID  # CronJob: Allow (on purpose)
    assert spec.starting_deadline_seconds is None
    assert spec.successful_runs_history_limit == 3
    assert spec.failed_runs_history_limit == 1
    assert spec.retry.limit == 0
    assert spec.retry.backoff_multiplier == 2


def test_namespace_defaults_and_key() -> None:
    doc = task_doc("backup")
    del doc["metadata"]["namespace"]
    assert CronTask.model_validate(doc).key == "default/backup"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"spec": {"schedul": "x"}}, "extra_forbidden"),
        ({"metadata": {"uid": "x"}}, "extra_forbidden"),
        ({"spec": {"command": {"args": ["true"], "shell": True}}}, "extra_forbidden"),
        ({"spec": {"command": None}}, "exactly one action"),
        ({"spec": {"command": {"args": [""]}}}, "program"),
        ({"spec": {"command": {"args": ["x"], "env": {"CRONTASK_RUN_ID": "1"}}}}, "CRONTASK_"),
        ({"spec": {"command": {"args": ["x"], "env": {"1BAD": "1"}}}}, "environment variable"),
        (
            {"spec": {"command": {"args": ["x"], "env": [{"name": "A", "value": "1"}]}}},
            "a map of NAME: value (not a list",
        ),
        ({"spec": {"timeZone": "Mars/Olympus"}}, "unknown time zone"),
        ({"spec": {"schedule": "* * * *"}}, "schedule"),
        ({"spec": {"concurrencyPolicy": "Sometimes"}}, "Allow"),
        ({"spec": {"timeoutSeconds": 0}}, "greater than or equal to 1"),
        ({"spec": {"startingDeadlineSeconds": 0}}, "greater than or equal to 1"),
        ({"spec": {"retry": {"backoffSeconds": 3.78e16}}}, "less than or equal to 86400"),
        ({"spec": {"retry": {"limit": -1}}}, "greater than or equal to 0"),
        ({"metadata": {"name": "x" * 64}}, "at most 63"),
        *[
            ({"spec": {"command": None, "http": {"url": url}}}, "not a URL a request can go to")
            for url in (
                "http://h:99999/",
                "http://h:abc/",
                "http://[::1/x",
                "http://h:0/",
                "http://h/a\x00b",
                "http://h/a\x7f",
            )
        ],
        # Accepted, httpx refused them at every run, where they escaped as "ActionError".
        *[
            (
                {"spec": {"command": None, "http": {"url": url}}},
                f"url\n  Value error, not a URL a request can go to: {problem}",
            )
            for url, problem in (
                ("http://256.256.256.256/x", "256.256.256.256 is not an IPv4 address"),
                ("http://01.2.3.4/x", "01.2.3.4 is not an IPv4 address"),
                ("http://[v1.x]/", "[v1.x] is not an IPv6 address"),
                ("https://xn--/x", "xn-- is not a valid IDNA label (xn--, then Punycode)"),
                ("https://XN--A-/x", "xn--a- is not a valid IDNA label"),
                ("https://xn--zz-1.example/x", "xn--zz-1 is not a valid IDNA label"),
                ("https://xn--ls8h.xn--/x", "xn-- is not a valid IDNA label"),
            )
        ],
        *[
            (
                {
                    "spec": {
                        "command": None,
                        "http": {
                            "url": "http://h/",
                            "method": "POST",
                            "body": "hello world",
                            "headers": [{"name": name, "value": "5"}],
                        },
                    }
                },
                message,
            )
            for name, message in (
                (
                    "Content-Length",
                    "http\n  Value error, a Content-Length header must be the body's length, 11",
                ),
                (
                    "transfer-encoding",
                    "name\n  Value error, transfer-encoding is set by crontask from the body",
                ),
            )
        ],
        # Accepted, they would fail every run (the kernel takes C strings) or forge a header.
        (
            {"spec": {"command": {"args": ["echo", "a\0b"]}}},
            "args.1\n  Value error, contains a NUL",
        ),
        (
            {"spec": {"command": {"args": ["x"], "env": {"A": "\0"}}}},
            "env.A\n  Value error, contains a NUL",
        ),
        (
            {"spec": {"command": {"args": ["x"], "workingDir": "/t\0"}}},
            "workingDir\n  Value error, contains a NUL",
        ),
        (
            {
                "spec": {
                    "command": None,
                    "http": {
                        "url": "http://h/",
                        "headers": [{"name": "X", "valueFrom": {"file": "/run/s\0"}}],
                    },
                }
            },
            "file\n  Value error, contains a NUL",
        ),
        (
            {"spec": {"command": {"args": ["x"], "workingDir": "a" * 4097}}},
            "workingDir\n  String should have at most 4096 characters",
        ),
        *[
            (
                {"spec": {"command": None, "http": {"url": "http://h/", "headers": [header]}}},
                "value\n  Value error, holds a character no header may (CR, LF, another",
            )
            for header in (
                {"name": "X", "value": "a\r\nAuthorization: Bearer forged"},
                {"name": "X", "value": "a\nb"},
                {"name": "X", "value": "a\x00"},
                {"name": "X", "value": "a\x1b[31m"},
                {"name": "X", "value": "café"},  # no client sends it: every run would fail
            )
        ],
        ({"spec": {"command": {"args": ["x"], "env": {"FOO\n": "1"}}}}, "not a valid environment"),
        # Past what the kernel gives a program: every run would fail "Argument list too long".
        (
            {"spec": {"command": {"args": ["x", "\U0001f600" * 32768]}}},
            "args[1]: this argument is 131072 bytes in UTF-8, more than the 131071 the kernel",
        ),
        (
            {"spec": {"command": {"args": ["x"], "env": {"AB": "\U0001f600" * 32767 + "x"}}}},
            "env.AB: this entry (name=value) is 131072 bytes in UTF-8",
        ),
        (
            {"spec": {"command": {"args": ["x", *["y" * 32768] * 64]}}},
            "its arguments and environment come to 2097738 bytes, more than 2097152",
        ),
        (
            {"spec": {"command": {"args": ["x"], "env": {"A" * 300_000: "1"}}}},
            "longer than 256 characters (the limit for an environment variable name)",
        ),
    ],
)
def test_invalid_definitions(change: dict[str, Any], fragment: str) -> None:
    doc = task_doc()
    for section, fields in change.items():
        doc[section].update(fields)
    with pytest.raises(ValidationError) as caught:
        CronTask.model_validate(doc)
    assert fragment in json.dumps(caught.value.errors(include_url=False), default=str) + str(
        caught.value
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://1.2.3.4/",
        "http://[::1]:8080/",
        "http://[fe80::1%25eth0]/",
        "https://xn--bcher-kva.example/",  # bücher
        "https://XN--LS8H.la/",  # valid Punycode; IDNA's own refusal comes at run time
        "http://a.xn--/",  # httpx decodes only a host that starts with xn--
        "http://1.2.3.4.5/",  # not a dotted quad: a name, which no resolver will know
    ],
)
def test_urls_the_client_parses_are_accepted(url: str) -> None:
    assert CronTask.model_validate(task_doc(command=None, http={"url": url})).spec.http


def test_a_host_header_is_accepted() -> None:
    # It frames nothing, and naming a virtual host at an address is a use of its own.
    headers = [{"name": "Host", "value": "intranet.example"}]
    http = {"url": "http://10.0.0.1/", "headers": headers}
    assert CronTask.model_validate(task_doc(command=None, http=http)).spec.http


def test_a_content_length_that_is_the_bodys_is_accepted() -> None:
    # Sent as the client would have sent it: a definition that worked goes on working.
    headers = [{"name": "content-length", "value": "11"}]
    http = {"url": "http://h/", "method": "POST", "body": "hello world", "headers": headers}
    assert CronTask.model_validate(task_doc(command=None, http=http)).spec.http


def test_a_tab_in_a_header_value_and_long_env_names_within_the_bound_are_accepted() -> None:
    headers = [{"name": "X", "value": "a\tb"}]
    http = CronTask.model_validate(
        task_doc(command=None, http={"url": "http://h/", "headers": headers})
    )
    assert http.spec.http is not None
    assert http.spec.http.headers[0].value == "a\tb"
    env = {"A" * 256: "1"}
    assert CronTask.model_validate(task_doc(command={"args": ["x"], "env": env})).spec.command


def test_equivalent_specs_hash_the_same() -> None:
    plain = CronTask.model_validate(task_doc())
    explicit = CronTask.model_validate(
        task_doc(suspend=False, retry={"limit": 0}, concurrencyPolicy="Forbid")
    )
    changed = CronTask.model_validate(task_doc(suspend=True))
    assert plain.spec_hash() == explicit.spec_hash()
    assert plain.spec_hash() != changed.spec_hash()


def test_labels_and_annotations_do_not_change_the_hash() -> None:
    doc = task_doc()
    doc["metadata"]["annotations"] = {"crontask.dev/run-now": "2026-11-26T00:00:00Z"}
    plain = CronTask.model_validate(task_doc())
    assert CronTask.model_validate(doc).spec_hash() == plain.spec_hash()


def test_committed_schema_matches_the_model() -> None:
    committed = json.loads((ROOT / "schemas" / "crontask.schema.json").read_text())
    assert committed == json_schema(), "schema is stale: run `make schema` and commit the result"


def test_examples_validate_against_the_json_schema() -> None:
    validator = jsonschema.Draft202012Validator(json_schema())
    count = 0
    for path in sorted((ROOT / "examples" / "tasks").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            validator.validate(document)
            CronTask.model_validate(document)
            count += 1
    assert count >= 4


def test_json_schema_rejects_unknown_fields() -> None:
    validator = jsonschema.Draft202012Validator(json_schema())
    doc = task_doc()
    doc["spec"]["schedul"] = "typo"
    assert not validator.is_valid(doc)


def test_tasks_of_one_shape_share_the_record_of_the_fields_they_gave() -> None:
    # Pydantic keeps, per instance, which fields the input gave: a set of its own, five per
    # task, a quarter of a task's memory. Tasks of the same shape share one frozen set.
    first = CronTask.model_validate(task_doc("a", schedule="0 1 * * *"))
    second = CronTask.model_validate(task_doc("b", schedule="0 2 * * *"))
    other = CronTask.model_validate(task_doc("c", suspend=True))
    assert first.spec.model_fields_set == {"schedule", "command"}
    assert first.spec.__pydantic_fields_set__ is second.spec.__pydantic_fields_set__
    assert first.metadata.__pydantic_fields_set__ is second.metadata.__pydantic_fields_set__
    assert other.spec.model_fields_set == {"schedule", "command", "suspend"}
    # What reads the record still reads it.
    assert other.spec.model_dump(exclude_unset=True)["suspend"] is True
    assert "suspend" not in first.spec.model_dump(exclude_unset=True)
    # A copy with changes records them on a set of its own, not on the shared one.
    changed = first.model_copy(update={"spec": other.spec})
    assert changed.model_fields_set == {"api_version", "kind", "metadata", "spec"}
    assert first.spec.model_fields_set == {"schedule", "command"}
    assert second.spec.model_fields_set == {"schedule", "command"}
    edited = first.spec.model_copy(update={"suspend": True})
    assert edited.model_fields_set == {"schedule", "command", "suspend"}
    assert second.spec.model_fields_set == {"schedule", "command"}


def test_a_whole_number_written_as_a_float_is_that_integer() -> None:
    # What a JSON encoder may send (json.dumps(30 * 1.0) is "30.0"), and what the API server
    # takes for an integer field; definitions that read so before must not vanish on upgrade.
    spec = CronTask.model_validate(
        task_doc(timeoutSeconds=30.0, startingDeadlineSeconds=60.0, retry={"limit": 2.0})
    ).spec
    assert (spec.timeout_seconds, spec.starting_deadline_seconds, spec.retry.limit) == (30, 60, 2)
    assert type(spec.timeout_seconds) is int


@pytest.mark.parametrize(
    "spec",
    [
        {"timeoutSeconds": 30.5},
        {"timeoutSeconds": "30"},
        {"retry": {"limit": True}},
        {"suspend": "off"},
    ],
)
def test_fractions_text_and_switches_are_no_numbers(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CronTask.model_validate(task_doc(**spec))


def test_the_bounds_of_a_programs_start_are_the_kernels() -> None:
    """What is accepted starts; one byte past the bound of one argument, the kernel refuses
    (MAX_ARG_STRLEN); and so it does a command past the bound of them all."""
    longest = "\U0001f600" * 32767 + "\u20ac"  # 32 768 characters, 131 071 bytes in UTF-8
    assert len(longest.encode()) == actions.MAX_EXEC_STRING - 1
    spec = CronTask.model_validate(task_doc(command={"args": ["true", longest]})).spec
    assert spec.command is not None
    subprocess.run(spec.command.args, check=True, env={})
    past = "\U0001f600" * 32768  # as many characters, one byte more
    with pytest.raises(ValidationError, match="131072 bytes in UTF-8"):
        CronTask.model_validate(task_doc(command={"args": ["true", past]}))
    with pytest.raises(OSError, match="Argument list too long"):
        subprocess.run(["true", past], check=True, env={})
    many = ["y" * 32768] * 64  # each within its bound, all of them past theirs
    with pytest.raises(ValidationError):
        CronTask.model_validate(task_doc(command={"args": ["true", *many]}))
    with pytest.raises(OSError, match="Argument list too long"):
        subprocess.run(["true", *many], check=True, env={})
