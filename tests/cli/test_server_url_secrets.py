"""``--server`` (or ``$CRONTASK_SERVER``) may hold a password (``https://ops:pw@host``) or a
token in its query: no message of the client commands shows them, whether the server cannot
be reached, answers what the client refuses, or the URL itself is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli.remote import NOT_TRIGGERED
from tests.cli.hostile import HostileServer, assert_one_line_error, cli, crontask
from tests.helpers import task_doc

PASSWORD = "CliPassw0rdSecret"  # noqa: S105 - a test value
TOKEN = "CliQueryTok3nSecret"  # noqa: S105 - a test value
SECRETS = (PASSWORD, TOKEN)


def with_password(url: str) -> str:
    return url.replace("http://", f"http://ops:{PASSWORD}@")


def assert_no_secret(text: str) -> None:
    assert not any(secret in text for secret in SECRETS), text


@pytest.mark.parametrize(
    "argv",
    [("tasks",), ("members",), ("trigger", "ops/a"), ("runs",), ("runs", "ops.a.20260101T000000Z")],
)
def test_an_unreachable_server_is_named_without_its_secrets(
    argv: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CRONTASK_TOKEN", raising=False)
    server = f"http://ops:{PASSWORD}@127.0.0.1:1/"  # nothing listens on port 1
    if argv[0] == "runs" and len(argv) == 2:
        argv = ("runs", "--id", argv[1])
    code = cli(*argv, "--server", server)
    _, err = capsys.readouterr()
    # Refused: nothing was sent, so a trigger surely was not taken (try again later).
    status = NOT_TRIGGERED if argv[0] == "trigger" else 1
    assert_one_line_error(code, err, "cannot reach crontask at http://127.0.0.1:1/ ", status)
    assert_no_secret(err)


@pytest.mark.parametrize(
    ("argv", "body", "says"),
    [
        (("tasks",), {"metadata": {}}, "answered a list without items"),
        (("tasks",), "not json", "answered with something that is not JSON"),
        (("members",), {"items": 5}, "answered members that are not a list of objects"),
        (("runs", "--id", "ops.a.20260101T000000Z"), {"attempts": 5}, "answered attempts"),
    ],
)
def test_a_refused_answer_names_the_server_without_its_password(
    hostile: HostileServer,
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    body: object,
    says: str,
) -> None:
    hostile.answer = lambda h: h.send(200, body)
    code = cli(*argv, "--server", with_password(hostile.url))
    _, err = capsys.readouterr()
    assert_one_line_error(code, err, f"crontask: {hostile.url} {says}")
    assert_no_secret(err)


def test_the_environment_variable_names_the_server_without_its_secrets(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRONTASK_SERVER", with_password(hostile.url))
    hostile.answer = lambda h: h.send(200, {"metadata": {}})
    code = cli("tasks")
    _, err = capsys.readouterr()
    assert_one_line_error(code, err, f"{hostile.url} answered a list without items")
    assert_no_secret(err)


@pytest.mark.parametrize("how", ["flag", "env"])
@pytest.mark.parametrize(
    ("port", "why"),
    [
        ("99999", "a port out of range"),
        # A query would swallow the API paths the client appends: refused, token unquoted.
        ("1", "only the query is wrong"),
    ],
)
def test_a_refused_server_url_is_quoted_without_its_secrets(how: str, port: str, why: str) -> None:
    bad = f"https://ops:{PASSWORD}@127.0.0.1:{port}/?token={TOKEN}"
    if how == "flag":
        done = crontask("tasks", "--server", bad, timeout=60)
    else:
        done = crontask("tasks", timeout=60, env={"CRONTASK_SERVER": bad})
    assert done.code == 2, f"{why}: {done.err}"
    assert "Traceback" not in done.err
    assert f"got 'https://127.0.0.1:{port}/?token=***'" in done.err
    assert_no_secret(done.err + done.out)


def test_plan_names_the_server_without_its_password(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "tasks").mkdir()
    doc = "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: new}\n"
    (tmp_path / "tasks" / "new.yaml").write_text(
        doc + "spec: {schedule: '@daily', command: {args: [x]}}\n"
    )
    source = {"kind": "file", "location": "tasks/old.yaml:1:1"}
    item = {"key": "default/old", "resource": task_doc("old"), "source": source}
    hostile.answer = lambda h: h.send(200, {"items": [item]})
    cli("plan", str(tmp_path / "tasks"), "--server", with_password(hostile.url))
    out, err = capsys.readouterr()
    assert f"- default/old  ({hostile.url} tasks/old.yaml:1:1)" in out, out + err
    assert_no_secret(out + err)

    hostile.answer = lambda h: h.send(200, {"items": [{**item, "resource": {"kind": 5}}]})
    code = cli("plan", str(tmp_path / "tasks"), "--server", with_password(hostile.url))
    out, err = capsys.readouterr()
    assert code == 1
    assert err == f"crontask: {hostile.url} answered a task that is no CronTask: default/old\n"
    assert_no_secret(out + err)
