"""``crontask trigger`` of a run the server took but that has not started (``status: pending``:
under Replace, it waits for the run it replaces to stop) prints what it waits for, and exits
``remote.PENDING``, with or without ``--json``: not 0, which says the run started (it may
never), so ``crontask trigger X && notify started`` does not notify; not ``SKIPPED`` either
(it most likely runs). It printed ``run ID pending`` alone, exit status 0.

The real pending answer, from a real ``crontask run``, is in
tests/e2e/test_run_now_replace_pending_command.py; here the words and codes, from a server
that says what the test wants (escapes included)."""

from __future__ import annotations

import json

import pytest

from reconciler.cli.remote import NOT_TRIGGERED, PENDING, SKIPPED
from tests.cli.hostile import Handler, HostileServer, cli

WHY = "not started: it waits for the run it replaces to stop (concurrencyPolicy Replace)"


def pending(h: Handler) -> None:
    h.send(202, {"id": "default.r.1", "status": "pending", "startTime": None, "message": WHY})


def test_a_pending_run_says_what_it_waits_for_with_an_exit_status_of_its_own(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert PENDING not in (0, 1, 2, SKIPPED, 74, NOT_TRIGGERED, 130)  # the CLI's other statuses
    hostile.answer = pending

    assert cli("trigger", "default/r", "--server", hostile.url) == PENDING
    out, err = capsys.readouterr()
    assert out == f"default/r: run default.r.1 pending: {WHY}\n"
    assert err == ""

    assert cli("trigger", "default/r", "--server", hostile.url, "--json") == PENDING
    out, _ = capsys.readouterr()
    assert json.loads(out)["status"] == "pending"


def test_a_pending_run_without_a_message_still_says_so(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile.answer = lambda h: h.send(202, {"id": "default.r.1", "status": "pending"})
    assert cli("trigger", "default/r", "--server", hostile.url) == PENDING
    out, _ = capsys.readouterr()
    assert out == "default/r: run default.r.1 pending: no reason given\n"
