"""A list the server never ends cannot keep the client: a ``continue`` token handed out twice
is an error at once, and so is a list longer than a million items, however it is paged."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from reconciler.cli import client
from tests.cli.hostile import Handler, HostileServer, assert_one_line_error, cli

GIVE_UP = 50  # answers before the server ends a list itself (an error: the test then fails)
PAGE = 100_000  # items of a page of the endless list
LAST = 10  # its last page: 1.1 million items in all


def same_token(h: Handler) -> None:
    if len(h.server.requests) > GIVE_UP:
        h.send(500, {"title": "the client followed the same token too often"})
        return
    items = [{"key": f"ops/t{i}", "state": "Ready"} for i in range(100)]
    h.send(200, {"items": items, "metadata": {"continue": "same"}})


def tokens_in_a_cycle(h: Handler) -> None:
    if len(h.server.requests) > GIVE_UP:
        h.send(500, {"title": "the client followed a cycle of tokens"})
        return
    page = len(h.server.requests) % 3
    h.send(200, {"items": [{"key": f"ops/t{page}"}], "metadata": {"continue": f"p{page}"}})


@pytest.mark.parametrize(
    ("command", "answer", "requests"),
    [
        (("tasks",), same_token, 2),
        (("tasks", "--json"), tokens_in_a_cycle, 4),
        (("runs", "--limit", "100000"), same_token, 2),
    ],
)
def test_a_token_given_twice_is_an_error(
    hostile: HostileServer,
    capsys: pytest.CaptureFixture[str],
    command: tuple[str, ...],
    answer: object,
    requests: int,
) -> None:
    hostile.answer = answer  # type: ignore[assignment]
    code = cli(*command, "--server", hostile.url)
    _, err = capsys.readouterr()
    assert_one_line_error(code, err, f"{hostile.url} answered a continue token it had given before")
    assert len(hostile.requests) == requests


def endless(h: Handler) -> None:
    """Pages of :data:`PAGE` items (whatever ``limit`` asked), each with a new token, up to 1.1
    million items."""
    query = parse_qs(urlsplit(h.path).query)
    page = int(query.get("continue", ["0"])[0])
    following = {"continue": str(page + 1)} if page < LAST else {}
    h.send(
        200,
        '{"items": [' + ",".join(["{}"] * PAGE) + "]" + f', "metadata": {json.dumps(following)}}}',
    )


def test_a_list_too_long_is_an_error(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile.answer = endless
    code = cli("tasks", "--json", "--server", hostile.url)
    out, err = capsys.readouterr()
    assert_one_line_error(
        code, err, f"{hostile.url} answered a list of more than {client.MAX_ITEMS} items"
    )
    assert out == ""
    assert len(hostile.requests) == client.MAX_ITEMS // PAGE + 1
