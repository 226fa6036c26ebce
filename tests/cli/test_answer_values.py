"""What an answer may cost once parsed, not only its bytes: ``{}`` is 3 bytes of JSON and a
64-byte dict, so a list's 256 MiB of them took 6.5 GB of memory. An answer that is one object
(``members``, ``trigger``, ``next KEY``) may be 16 MiB (``runs --id``, whose attempts each keep
64 KiB of output, 64 MiB) and hold a million JSON values; a list's pages together 16 million.
Both are one line and exit status 1, as any answer crontask refuses; so is ``NaN`` or
``Infinity``, which no JSON has and ``--json`` printed."""

from __future__ import annotations

import json

import pytest

from reconciler.cli import client
from reconciler.sources.limits import MIB
from tests.cli.hostile import Handler, HostileServer, assert_one_line_error, cli


def test_the_bounds() -> None:
    assert client.MAX_OBJECT_VALUES == 1_000_000
    assert client.MAX_LIST_VALUES == 16_000_000
    assert client.MAX_OBJECT_BYTES == 16 * MIB


def empties(n: int) -> str:
    return "[" + ",".join(["{}"] * n) + "]"


@pytest.mark.parametrize("argv", [("members",), ("trigger", "ops/a"), ("next", "ops/a")])
def test_an_object_of_too_many_values_is_refused(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    body = '{"id": "r", "items": [], "pad": ' + empties(1_000_001) + "}"  # 3 MB
    hostile.answer = lambda h: h.send(200, body)
    code = cli(*argv, "--server", hostile.url)
    _, err = capsys.readouterr()
    assert_one_line_error(
        code, err, f"{hostile.url} answered JSON of more than 1,000,000 values (refused)"
    )


def test_commas_in_strings_are_no_values(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # A command may hold many commas, colons and brackets: they are no values.
    text = ',:[{"\\\\' * 300_000
    answer = {"items": [{"id": "m", "address": text}]}
    hostile.answer = lambda h: h.send(200, answer)
    assert cli("members", "--server", hostile.url, "--json") == 0
    out, _ = capsys.readouterr()
    assert json.loads(out) == answer


def test_an_object_over_its_bytes_is_refused(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    body = '{"items": [], "pad": "' + "x" * (16 * MIB) + '"}'
    hostile.answer = lambda h: h.send(200, body)
    code = cli("members", "--server", hostile.url)
    _, err = capsys.readouterr()
    assert_one_line_error(code, err, f"{hostile.url} answered more than 16 MiB (refused)")


def test_one_run_may_be_larger(hostile: HostileServer, capsys: pytest.CaptureFixture[str]) -> None:
    # 101 attempts of 64 KiB of output, each character escaped by JSON (\u001b: 6 bytes).
    output = "\x1b" * 64 * 1024
    attempts = [
        {"id": "ops.a.20260101T000000Z", "attempt": i, "output": output} for i in range(101)
    ]
    hostile.answer = lambda h: h.send(200, {"attempts": attempts})
    assert cli("runs", "--server", hostile.url, "--id", "ops.a.20260101T000000Z", "--json") == 0
    out, _ = capsys.readouterr()
    assert len(json.loads(out)["items"]) == 101


@pytest.fixture
def fewer_list_values(monkeypatch: pytest.MonkeyPatch) -> None:
    # The test's pages are small; the bound is the same code at 16 million.
    monkeypatch.setattr(client, "MAX_LIST_VALUES", 300_000)


@pytest.mark.usefixtures("fewer_list_values")
def test_a_list_of_too_many_values_is_refused(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    page = 0

    def answer(h: Handler) -> None:
        nonlocal page
        page += 1
        # 100 000 values a page (each item {"a":[]}: 3 values), a new token each time.
        items = ",".join(['{"a":[]}'] * 33_000)
        body = f'{{"metadata": {{"continue": "p{page}"}}, "items": [{items}]}}'
        h.send(200, body)

    hostile.answer = answer
    code = cli("tasks", "--server", hostile.url, "--json")
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_line_error(
        code, err, f"{hostile.url} answered a list of more than 300,000 JSON values in all"
    )
    assert len(hostile.requests) == 3


@pytest.mark.usefixtures("fewer_list_values")
def test_commas_in_a_list_s_strings_are_not_charged_to_it(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two pages whose one command holds 100 000 commas each, then one of 200 000 values (the
    list's bound here is 300 000): the commands' commas are no values, and the list is whole
    (charged the fast count, they took 200 000 of the bound, and the last page was refused)."""
    page = 0

    def answer(h: Handler) -> None:
        nonlocal page
        page += 1
        if page < 3:
            item = json.dumps({"key": f"ops/t{page}", "command": "," * 100_000})
            h.send(200, f'{{"metadata": {{"continue": "p{page}"}}, "items": [{item}]}}')
        else:
            items = ",".join(['{"a": []}'] * 50_000)  # 200 000 values, by the fast count
            h.send(200, f'{{"metadata": {{}}, "items": [{items}]}}')

    hostile.answer = answer
    assert cli("tasks", "--server", hostile.url, "--json") == 0
    out, _ = capsys.readouterr()
    assert len(json.loads(out)["items"]) == 2 + 50_000


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_is_not_json(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str], constant: str
) -> None:
    body = f'{{"items": [{{"key": "ops/a", "x": {constant}}}]}}'
    hostile.answer = lambda h: h.send(200, body)
    code = cli("tasks", "--server", hostile.url, "--json")
    out, err = capsys.readouterr()
    assert out == ""
    said = f"{hostile.url} answered a number crontask refuses: {constant} is not JSON"
    assert_one_line_error(code, err, said)
