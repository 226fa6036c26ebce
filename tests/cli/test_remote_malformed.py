"""An answer of an unexpected shape is one line and exit status 1, as any remote error is,
never a traceback; a field of an odd type where a table shows it is printed as it can be."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cli.hostile import HostileServer, assert_one_line_error, cli

DEEP = "[" * 100_000 + "]" * 100_000

MALFORMED = [
    (("tasks",), 200, '{"items": [1]}', "answered items that are not a list of objects"),
    (("tasks", "--json"), 200, '{"items": [[]]}', "answered items that are not a list"),
    (("tasks",), 200, DEEP, "answered with JSON nested too deep"),
    (("tasks",), 200, '{"items": ' + DEEP + "}", "answered with JSON nested too deep"),
    (("tasks",), 422, '{"title": "Invalid", "errors": 5}', "crontask: 422 Invalid\n"),
    (("tasks",), 422, '{"title": "x", "errors": [{"location": 5}]}', "crontask: 422 x; : None"),
    (("tasks",), 403, DEEP, "crontask: 403 Forbidden\n"),
    (("trigger", "ops/a"), 200, '{"status": "succeeded"}', "answered a run without an id"),
    (("trigger", "ops/a"), 200, '{"id": 5, "status": "skipped"}', "a run without an id"),
    (("trigger", "ops/a", "--json"), 200, '{"status": "x"}', "a run without an id"),
    # A 2xx to a trigger that cannot be read: the server took it, so it may have run.
    (("trigger", "ops/a"), 201, '{"id": NaN}', "NaN is not JSON; it may have run: see `crontask"),
    (("trigger", "ops/a"), 201, '{"id": "x", "n": 1e400}', "too large a number; it may have run"),
    (("trigger", "ops/a"), 201, '{"status": "x"}', "without an id; it may have run: see"),
    (("members",), 200, '{"items": 5}', "answered members that are not a list of objects"),
    (("members",), 200, '{"items": [], "differingTasks": [7]}', "answered differing tasks"),
    (("runs",), 200, '{"items": ["x"]}', "answered items that are not a list of objects"),
    (("runs", "--id", "ops.a.20260101T000000Z"), 200, DEEP, "nested too deep"),
]


@pytest.mark.parametrize(("argv", "status", "body", "says"), MALFORMED)
def test_a_malformed_answer_is_a_remote_error(
    hostile: HostileServer,
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    status: int,
    body: str,
    says: str,
) -> None:
    hostile.answer = lambda h: h.send(status, body)
    code = cli(*argv, "--server", hostile.url)
    _, err = capsys.readouterr()
    assert_one_line_error(code, err, says)


ODD_MEMBERS = {
    "items": [{"id": 5, "me": True, "since": 1, "renewed": [], "ownedTasks": None}],
    "disagreeingSince": 3,
    "differingTasks": [{"task": None, "hashes": 5}, {"hashes": {"a": [1]}}],
}


@pytest.mark.parametrize(
    ("status", "where"),
    [(301, "https://crontask.example/api"), (302, "mailto:ops@example.com")],
    ids=["https", "mailto"],
)
@pytest.mark.parametrize("argv", [("tasks",), ("members",), ("trigger", "ops/a")])
def test_a_redirect_is_an_error_that_says_where_it_leads(
    hostile: HostileServer,
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    status: int,
    where: str,
) -> None:
    """An ingress that sends http to https answers 301 with no body: it was an empty table
    (members), or a list without items (tasks), with no word of the redirect. A Location
    that is no address to ask (``mailto:``) is said all the same, not a traceback."""

    def redirect(h: Any) -> None:
        h.send_response(status)
        h.send_header("Location", where)
        h.send_header("Content-Length", "0")
        h.end_headers()

    hostile.answer = redirect
    code = cli(*argv, "--server", hostile.url)
    _, err = capsys.readouterr()
    assert_one_line_error(code, err, f"answered {status} (a redirect to {where})")


@pytest.mark.parametrize(
    ("argv", "body", "says"),
    [
        (("members",), ODD_MEMBERS, "5 (this one)  -        1      <list>   -"),
    ],
)
def test_odd_fields_are_shown(
    hostile: HostileServer,
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    body: object,
    says: str,
) -> None:
    hostile.answer = lambda h: h.send(200, body)
    assert cli(*argv, "--server", hostile.url) == 0
    out, err = capsys.readouterr()
    assert says in out, out
    assert "Traceback" not in err
