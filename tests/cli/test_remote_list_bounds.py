"""A list's pages together have bounds of their own, besides each answer's: a server handing
out page after large page, each under the 64 MiB of one answer and each with a new ``continue``
token, is refused once they pass 256 MiB in all (before, 60 pages of 16 MiB took the client to
1 GB of memory); and a list paced to go on and on ends at 10 times a request's deadline. The
tests lower the bound to 64 MiB, as the bytes they send cost time, not the code."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from reconciler.cli import client
from reconciler.sources.limits import MIB
from tests.cli.hostile import Handler, HostileServer, assert_one_line_error, cli, crontask

LIST_BYTES = 64 * MIB  # all the pages of a list together, in these tests


@pytest.fixture
def lower_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "MAX_LIST_BYTES", LIST_BYTES)


def test_the_bound_of_a_whole_list() -> None:
    assert client.MAX_LIST_BYTES == 256 * MIB


PAGE = 9 * MIB  # of one task's error: 7 pages fit in 64 MiB, the 8th does not
PAGES = 10  # the server ends the list itself after these (90 MiB), as a client without the
# bound would read them all and exit 0


def page_number(h: Handler) -> int:
    return int(parse_qs(urlsplit(h.path).query).get("continue", ["0"])[0])


def large_pages(last: int) -> object:
    """An answer of pages of one task (or run) of :data:`PAGE` bytes each, each with a new
    token, up to page ``last``."""
    big = "E" * PAGE

    def answer(h: Handler) -> None:
        page = page_number(h)
        following = {"continue": str(page + 1)} if page < last else {}
        item = {"key": f"ops/t{page}", "id": f"ops.t{page}.20260101T000000Z", "error": big}
        h.send(200, {"items": [item], "metadata": following})

    return answer


@pytest.mark.parametrize(
    "command", [("tasks",), ("tasks", "--json"), ("runs", "--limit", "100000")]
)
def test_pages_over_the_bound_in_all_are_refused(
    hostile: HostileServer,
    capsys: pytest.CaptureFixture[str],
    command: tuple[str, ...],
    lower_bound: None,
) -> None:
    hostile.answer = large_pages(PAGES - 1)  # type: ignore[assignment]
    code = cli(*command, "--server", hostile.url)
    out, err = capsys.readouterr()
    assert_one_line_error(
        code, err, f"crontask: {hostile.url} answered a list of more than 64 MiB in all (refused)"
    )
    assert out == ""
    # Refused by its length, as soon as the page that would pass the bound says it.
    assert len(hostile.requests) == LIST_BYTES // PAGE + 1


def test_pages_under_the_bound_in_all_are_listed(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str], lower_bound: None
) -> None:
    fit = LIST_BYTES // (PAGE + 1000)  # a page's JSON is a little more than PAGE
    hostile.answer = large_pages(fit - 1)  # type: ignore[assignment]
    assert cli("tasks", "--server", hostile.url) == 0
    out, err = capsys.readouterr()
    assert [line.split()[0] for line in out.splitlines()[1:]] == [f"ops/t{n}" for n in range(fit)]
    assert len(err) < fit * 5000  # each error cut (tests/cli/test_remote_long_strings.py)


TIMEOUT = 0.4  # $CRONTASK_TIMEOUT
DEADLINE = 4.0  # of the whole list: 10 times a request's
SLACK = 4.0  # starting the interpreter, on a busy machine


def paced(h: Handler) -> None:
    """A small page a twentieth of a second after it is asked for, each with a new token, for
    ever: every request is well within its deadline, the list never ends."""
    if h.server.stopped.wait(0.05):
        return
    following = {"continue": str(page_number(h) + 1)}
    h.send(200, {"items": [{"key": f"ops/t{page_number(h)}"}], "metadata": following})


def test_a_list_that_goes_on_ends_at_its_deadline(hostile: HostileServer) -> None:
    hostile.answer = paced
    done = crontask(
        "tasks",
        "--json",
        "--server",
        hostile.url,
        env={"CRONTASK_TIMEOUT": str(TIMEOUT)},
        # Without the bound, 10 000 pages of 0.05 s: this ends the test instead, as a failure.
        timeout=DEADLINE + 2 * SLACK,
    )
    assert_one_line_error(
        done.code, done.err, f"crontask at {hostile.url} did not end the list within {DEADLINE:g}s"
    )
    assert done.out == ""
    assert done.seconds < DEADLINE + SLACK
    assert len(hostile.requests) > 10  # it was the list's deadline, not one request's
    assert TIMEOUT * client.LIST_TIMEOUT_FACTOR == DEADLINE
