"""The --notifications file's checks of what can never work: a URL whose host httpx cannot
read (said in crontask's words, never the URL's), a route's ``match`` that no task can meet
(a ``namespace/name`` key where a name is expected, a character no task name holds), and a
receiver that no route sends to (a warning of ``crontask validate``: the file still works)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.sinks.notify_config import NotificationConfigError, check_url, load
from tests.helpers import crontask_cli

FILE = """\
receivers:
  - name: ops-hook
    type: slack
    url: https://hooks.example/services/T0/B0/xyz
routes:
  - receiver: ops-hook
    events: [failed]
    match: {name: "backup-*"}
"""
TASK = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: a}\n"
    'spec: {schedule: "@hourly", command: {args: ["true"]}}\n'
)
URL_LINE = "url: https://hooks.example/services/T0/B0/xyz"
# Punycode that decodes to no valid label: httpx reads the URL, then fails on its host.
IDNA_URL = "https://xn--a.hooks.example/services/T/B/TOKEN-in-path"


def written(folder: Path, text: str) -> Path:
    path = folder / "notify.yaml"
    path.write_text(text)
    path.chmod(0o600)  # no warning of a file others may read
    return path


def problems(folder: Path, text: str) -> str:
    with pytest.raises(NotificationConfigError) as caught:
        load(written(folder, text))
    return str(caught.value)


def test_a_host_that_is_no_idna_name_is_said_in_crontasks_words(tmp_path: Path) -> None:
    said = problems(tmp_path, FILE.replace(URL_LINE, f"url: {IDNA_URL}"))

    assert said == (
        f"{tmp_path / 'notify.yaml'}:4:10: receivers[0].url: "
        "the URL is not valid (its host or port cannot be read)"
    )


def test_a_url_file_with_such_a_host_fails_its_delivery_without_the_url(tmp_path: Path) -> None:
    """Read again at each delivery: the error the delivery logs is crontask's too."""
    (tmp_path / "hook-url").write_text("https://hooks.example/ok\n")
    (tmp_path / "hook-url").chmod(0o600)
    loaded = load(written(tmp_path, FILE.replace(URL_LINE, "urlFile: hook-url")))
    (tmp_path / "hook-url").write_text(IDNA_URL + "\n")  # rotated to a bad one

    with pytest.raises(ValueError, match=r"^the URL is not valid \(its host") as caught:
        loaded.url_of(loaded.config.receivers[0])
    assert "TOKEN" not in str(caught.value)
    assert "xn--" not in str(caught.value)
    with pytest.raises(ValueError, match=r"^the URL is not valid"):
        check_url(IDNA_URL)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (  # a namespace/name key where a name is expected
            "ops/odd-*",
            "'ops/odd-*' can match no task: a task's name holds no '/': "
            "write namespace: ops and name: odd-*",
        ),
        (
            "*/odd-*",
            "'*/odd-*' can match no task: a task's name holds no '/': "
            "write name: odd-* and no namespace to match odd-* in every namespace",
        ),
        (  # no DNS-1123 label holds '_' (nor '.': a task's name is a label, not a subdomain)
            "odd_out",
            "'odd_out' can match no task: '_' is in no task name (lower-case letters, digits "
            "and '-'; a glob adds *, ? and [...]): write '-' or ? in its place",
        ),
        (
            "db.backup",
            "'db.backup' can match no task: '.' is in no task name",
        ),
        (  # a [set] none of whose characters a name holds
            "odd[_.]out",
            "'odd[_.]out' can match no task: [_.] matches no character of a task name",
        ),
        (  # fnmatch reads an unclosed [ as itself
            "odd[out",
            "'odd[out' can match no task: '[' is in no task name",
        ),
        (  # longer than a DNS-1123 label, each '?' and [set] one character, each '*' none
            "backup-" + "?" * 54 + "[0-9]" + "*" * 20 + "-x",
            "'backup-" + "?" * 54 + "[0-9]" + "*" * 20 + "-x' can match no task: a name it"
            " matches has at least 64 characters",
        ),
    ],
)
def test_a_name_no_task_can_have_is_refused_with_what_to_write(
    tmp_path: Path, name: str, expected: str
) -> None:
    said = problems(tmp_path, FILE.replace('"backup-*"', f'"{name}"'))

    assert said.startswith(f"{tmp_path / 'notify.yaml'}:8:19: routes[0].match.name: {expected}")


def test_a_namespace_that_is_a_key_or_a_glob_says_what_to_write(tmp_path: Path) -> None:
    said = problems(tmp_path, FILE.replace('{name: "backup-*"}', '{namespace: "ops/backup-*"}'))
    assert said == (
        f"{tmp_path / 'notify.yaml'}:8:24: routes[0].match.namespace: 'ops/backup-*' is a "
        "namespace and a name: write namespace: ops and name: backup-*"
    )
    said = problems(tmp_path, FILE.replace('{name: "backup-*"}', '{namespace: "team-*"}'))
    assert said == (
        f"{tmp_path / 'notify.yaml'}:8:24: routes[0].match.namespace: 'team-*' is a glob: "
        "a namespace is matched whole (leave it out to match every namespace)"
    )


@pytest.mark.parametrize(
    "name",
    ["backup-*", "b?ckup-[0-9]*", "[!_]*", "[a_]x", "[!A-Z]ackup-*", "x" * 53 + "[0-9]*" * 10],
)
def test_names_some_task_can_have_still_load(tmp_path: Path, name: str) -> None:
    loaded = load(written(tmp_path, FILE.replace('"backup-*"', f'"{name}"')))

    assert loaded.config.routes[0].match.name == name


def test_validate_warns_of_a_receiver_no_route_sends_to_and_passes(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(TASK)
    spare = "  - name: spare\n    type: generic\n    url: https://hooks.example/spare\nroutes:\n"
    notify = written(tmp_path, FILE.replace("routes:\n", spare))

    done = crontask_cli("validate", str(tmp_path / "a.yaml"), "--notifications", str(notify))

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        f"{notify}:5:11: warning: receivers[1]: no route sends to 'spare': "
        "it is sent no notification",
        "ok: 1 file, 1 task, 2 notification receivers, 1 warning",
    ]
    assert done.stderr == ""


def test_validate_fails_a_route_no_task_can_match(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(TASK)
    notify = written(tmp_path, FILE.replace('"backup-*"', '"ops/odd-*"'))

    done = crontask_cli("validate", str(tmp_path / "a.yaml"), "--notifications", str(notify))

    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"{notify}:8:19: routes[0].match.name: 'ops/odd-*' can match no task: a task's name "
        "holds no '/': write namespace: ops and name: odd-*"
    ]
    assert done.stderr == "1 problem (1 file, 1 task)\n"
