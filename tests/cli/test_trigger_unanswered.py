"""A trigger whose answer does not come (not within ``$CRONTASK_TIMEOUT``, or a connection
that breaks once the request is sent) may have been taken: the line says to look at the runs
before triggering again, as one whose 2xx cannot be read does, since asking again could run the
task twice. It said only "did not answer within 1s". A real process, a real HTTP server."""

from __future__ import annotations

import pytest

from tests.cli.hostile import Handler, HostileServer, assert_one_line_error, crontask


def _never(h: Handler) -> None:
    h.server.stopped.wait(60)  # the test's end: no answer before the command's deadline


def _hang_up(h: Handler) -> None:
    h.close_connection = True  # the request was read: it may have been acted on


@pytest.mark.parametrize(
    ("answer", "says"),
    [(_never, "did not answer within 1s"), (_hang_up, "failed: RemoteProtocolError")],
)
def test_a_trigger_without_an_answer_may_have_run(
    hostile: HostileServer, answer: object, says: str
) -> None:
    hostile.answer = answer  # type: ignore[assignment]
    done = crontask(
        "trigger", "ops/a", "--server", hostile.url, env={"CRONTASK_TIMEOUT": "1"}, timeout=60
    )
    look = f"see `crontask runs ops/a --server {hostile.url}` before triggering it again"
    assert_one_line_error(done.code, done.err, f"{says}; it may have run: {look}\n")
    assert hostile.requests == ["/api/v1/tasks/ops/a/runs"]  # asked once, never again


def test_a_list_without_an_answer_says_nothing_of_runs(hostile: HostileServer) -> None:
    hostile.answer = _never
    done = crontask("tasks", "--server", hostile.url, env={"CRONTASK_TIMEOUT": "1"}, timeout=60)
    assert_one_line_error(done.code, done.err, "did not answer within 1s\n")
