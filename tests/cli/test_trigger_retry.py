"""``crontask trigger`` asks again only where that is safe: a trigger is not idempotent, and one
asked again after it was taken runs the task twice. The API says which of its 503s took
nothing: ``not-started`` (the replica may not start runs now: nothing was run or recorded).
Those are asked again after their ``Retry-After`` (said on stderr), at most ``MAX_TRIES`` times
and ``--max-wait`` seconds of waiting in all; past that, or when the wait asked for is longer,
the command says "not triggered" and when to try again, exit status 75 (EX_TEMPFAIL). Every
other 503 may have started a run (``run-undecided``: the run starts if the store takes its
claim; a generic one: a trigger handed to the scheduler that did not answer in time): it is not
asked again, exit status 1, and ``run-undecided`` says to look before triggering again.

Each case is a real HTTP server answering as the crontask API does (its problem types are
checked against the API's own answers in ``tests/api/test_trigger_problem_types.py``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from reconciler.cli import remote
from tests.cli.hostile import Handler, HostileServer, cli

PROBLEMS = "https://crontask.dev/problems/"
NOT_STARTED = "run of ops/a not started: this replica may not start runs now: fenced; retry later"
RUN = {"id": "ops.a.20261127T013000Z", "task": "ops/a", "status": "running", "attempt": 1}


def _problem(kind: str, detail: str) -> dict[str, Any]:
    return {"type": PROBLEMS + kind, "title": "x", "status": 503, "detail": detail}


def _unavailable(kind: str, retry_after: str | None, detail: str = NOT_STARTED) -> Any:
    def answer(h: Handler) -> None:
        data = json.dumps(_problem(kind, detail)).encode()
        h.send_response(503)
        h.send_header("Content-Type", "application/problem+json")
        if retry_after is not None:
            h.send_header("Retry-After", retry_after)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    return answer


def _script(hostile: HostileServer, *answers: Any) -> None:
    """The server's answers in turn; the last one for every request after."""
    queue = list(answers)

    def answer(h: Handler) -> None:
        (queue.pop(0) if len(queue) > 1 else queue[0])(h)

    hostile.answer = answer


def _accepted(h: Handler) -> None:
    h.send(202, RUN)


def test_a_run_not_started_is_asked_again_after_retry_after(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    waits = _unavailable("not-started", "0")
    _script(hostile, waits, waits, _accepted)
    code = cli("trigger", "ops/a", "--server", hostile.url)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == "ops/a: run ops.a.20261127T013000Z running\n"
    assert len(hostile.requests) == 3
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("crontask: ops/a not started"), err
    assert "asking again in 0s (try 2 of 5)" in lines[0], err
    assert "(try 3 of 5)" in lines[1], err


@pytest.mark.parametrize(
    ("retry_after", "said"), [("1", "1s"), ("Wed, 21 Oct 2015 07:28:00 GMT", "0s"), (None, "5s")]
)
def test_the_wait_is_the_one_retry_after_says(
    hostile: HostileServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    retry_after: str | None,
    said: str,
) -> None:
    waits: list[float] = []  # the waits themselves, not slept: "1" is slept in the first case
    if retry_after is None:
        monkeypatch.setattr(remote, "sleep", waits.append)
    _script(hostile, _unavailable("not-started", retry_after), _accepted)
    code = cli("trigger", "ops/a", "--server", hostile.url, "--json")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["id"] == RUN["id"]
    assert f"asking again in {said} (try 2 of 5)" in err, err
    assert waits == ([5.0] if retry_after is None else [])


def test_the_tries_are_bounded_then_not_triggered(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    _script(hostile, _unavailable("not-started", "0"))
    code = cli("trigger", "ops/a", "--server", hostile.url)
    _, err = capsys.readouterr()
    assert code == remote.NOT_TRIGGERED == 75, err
    assert len(hostile.requests) == remote.MAX_TRIES == 5
    last = err.splitlines()[-1]
    assert last.startswith("crontask: ops/a not triggered (nothing was run): "), err
    assert last.endswith("; try again in 0s"), err


@pytest.mark.parametrize(
    ("retry_after", "argv", "again"),
    [
        ("120", (), "120s"),  # longer than the 30 s waited by default
        ("5", ("--max-wait", "0"), "5s"),
        ("0", ("--max-wait", "0"), "0s"),  # 0: ask once
        ("Wed, 21 Oct 2099 07:28:00 GMT", (), "86400s"),  # a date: at most a day
        ("soon", ("--max-wait", "3"), "5s"),  # unreadable: crontask's own 5 s
    ],
)
def test_a_wait_past_max_wait_is_not_waited_for(
    hostile: HostileServer,
    capsys: pytest.CaptureFixture[str],
    retry_after: str,
    argv: tuple[str, ...],
    again: str,
) -> None:
    _script(hostile, _unavailable("not-started", retry_after))
    code = cli("trigger", "ops/a", "--server", hostile.url, *argv)
    _, err = capsys.readouterr()
    assert code == 75, err
    assert len(hostile.requests) == 1
    assert err.count("\n") == 1, err
    assert err.endswith(f"; try again in {again}\n"), err
    assert "this replica may not start runs now" in err, err


def test_a_run_whose_start_is_undecided_is_not_asked_again(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    detail = (
        "the run store did not answer ...: run ops.a.20261127T013000Z starts only if the store "
        "takes its claim, else it is recorded skipped (StoreUnavailable)"
    )
    _script(hostile, _unavailable("run-undecided", "0", detail), _accepted)
    code = cli("trigger", "ops/a", "--server", hostile.url)
    _, err = capsys.readouterr()
    assert code == 1, err
    assert len(hostile.requests) == 1
    assert err.count("\n") == 1, err
    assert "run ops.a.20261127T013000Z starts only if" in err, err
    assert err.endswith(
        f"; it may still run: see `crontask runs ops/a --server {hostile.url}` before "
        "triggering it again\n"
    ), err


@pytest.mark.parametrize("kind", ["unavailable", "not-in-force"])
def test_any_other_503_is_not_asked_again(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    _script(hostile, _unavailable(kind, "0", "busy"), _accepted)
    code = cli("trigger", "ops/a", "--server", hostile.url)
    _, err = capsys.readouterr()
    assert (code, err) == (1, "crontask: 503 x: busy\n")
    assert len(hostile.requests) == 1


def test_max_wait_is_checked_before_anything_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("trigger", "ops/a", "--max-wait", "-1") == 2
    assert "--max-wait" in capsys.readouterr().err
