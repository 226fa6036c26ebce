"""Claims on child pids (``reconciler.children``): what the reaper of orphans (crontask as
PID 1) must leave alone, from a spawn until its owner has reaped it."""

from __future__ import annotations

import os
from contextlib import closing

from reconciler import children
from reconciler.children import Claims
from reconciler.sources.gitprocess import GitRunner


def unclaimed(claims: Claims, pids: list[int]) -> list[int]:
    """The pids of ``pids`` the reaper would be allowed to take now."""
    taken: list[int] = []

    def take(pid: int) -> bool:
        taken.append(pid)
        return True

    claims.reap_unclaimed(pids, claims.mark(), take)
    return taken


def test_a_pid_reused_before_its_first_owner_said_so_stays_claimed() -> None:
    claims = Claims()
    for _ in range(2):  # reaped by its first owner, and at once started again by a spawn
        claims.end(claims.begin(), 4242)
    claims.forget(4242)  # the first owner says so, late
    assert unclaimed(claims, [4242]) == []
    claims.forget(4242)
    assert unclaimed(claims, [4242]) == [4242]


def test_no_pid_is_taken_while_a_spawn_begun_before_has_not_told_its_own() -> None:
    claims = Claims()
    number = claims.begin()
    assert unclaimed(claims, [4242]) == []  # it could be the spawn's own, exited already
    claims.end(number, None)
    assert unclaimed(claims, [4242]) == [4242]


def test_git_is_claimed_until_its_caller_has_reaped_it() -> None:
    """A listing read slowly (a generator held between records) keeps git claimed after it
    exited: the reaper, which would take an unclaimed zombie, must not take its exit status."""
    runner = GitRunner(env=dict(os.environ), timeout=30, redact=lambda text: text)
    records = runner.run_records(["--version"], separator=b"\n", max_record=4096)
    with closing(records):
        first = next(records)
        assert first.startswith(b"git version")
        process = runner._process
        assert process is not None
        assert unclaimed(children.claims, [process.pid]) == []
        assert list(records) == []  # the end: git reaped by its caller
    assert unclaimed(children.claims, [process.pid]) == [process.pid]
