"""A server's answer whose values overflow what Python makes of them: a ``Retry-After`` date
whose year is too large for a C long (an OverflowError, not the ValueError of a year past
9999) ended every client command that got an error answer in a traceback; a number too large
for a float (``1e400``) was read as ``inf``, which ``--json`` printed as ``Infinity``, no JSON,
where the literal ``Infinity`` is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.cli.answers import retry_after
from tests.cli.hostile import Handler, HostileServer, assert_one_line_error, cli

HUGE_YEAR = "Mon, 01 Jan 99999999999999999999 00:00:00 GMT"


@pytest.mark.parametrize(
    "value", [HUGE_YEAR, "Mon, 01 Jan 99999 00:00:00 GMT", "Mon, 01 Jan 2026 99:00:00 GMT"]
)
def test_a_date_out_of_range_is_unreadable(value: str) -> None:
    assert retry_after(value) is None


def test_a_date_still_reads() -> None:
    now = datetime(2015, 10, 21, 7, 28, tzinfo=UTC)
    assert retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now) == 30.0


@pytest.mark.parametrize("argv", [("tasks",), ("trigger", "ops/a"), ("members",)])
def test_an_error_answer_with_a_huge_retry_after_is_one_line(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    def answer(h: Handler) -> None:
        data = b'{"title": "Unauthorized", "status": 401}'
        h.send_response(401)
        h.send_header("Content-Type", "application/problem+json")
        h.send_header("Retry-After", HUGE_YEAR)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    hostile.answer = answer
    code = cli(*argv, "--server", hostile.url)
    _, err = capsys.readouterr()
    assert_one_line_error(code, err, "401 Unauthorized")


@pytest.mark.parametrize("number", ["1e400", "-1e999", "123456789e999999"])
@pytest.mark.parametrize("argv", [("tasks", "--json"), ("runs", "--json")])
def test_a_number_too_large_for_a_float_is_not_json(
    hostile: HostileServer,
    capsys: pytest.CaptureFixture[str],
    number: str,
    argv: tuple[str, ...],
) -> None:
    body = f'{{"items": [{{"key": "ops/a", "id": "a", "x": {number}}}]}}'
    hostile.answer = lambda h: h.send(200, body)
    code = cli(*argv, "--server", hostile.url)
    out, err = capsys.readouterr()
    assert "Infinity" not in out
    assert out == ""
    said = f"{hostile.url} answered a number crontask refuses: {number} is too large a number"
    assert_one_line_error(code, err, said)


def test_a_large_number_within_a_float_is_read(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    body = '{"items": [{"key": "ops/a", "x": 1e308, "y": -2.5e-400, "z": 10000000000000000000000}]}'
    hostile.answer = lambda h: h.send(200, body)
    assert cli("tasks", "--server", hostile.url, "--json") == 0
    out, _ = capsys.readouterr()
    assert '"x": 1e+308' in out
    assert '"y": -0.0' in out
    assert '"z": 10000000000000000000000' in out


@pytest.mark.parametrize("number", ["1e400", "-1e999"])
def test_an_error_answer_with_a_huge_number_is_said_by_its_status(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str], number: str
) -> None:
    body = f'{{"type": "about:blank", "title": "Conflict", "status": {number}}}'
    hostile.answer = lambda h: h.send(409, body, "application/problem+json")
    code = cli("trigger", "ops/a", "--server", hostile.url)
    _, err = capsys.readouterr()
    assert "inf" not in err
    assert_one_line_error(code, err, "409 Conflict")
