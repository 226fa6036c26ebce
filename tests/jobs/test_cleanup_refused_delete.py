"""A Job whose delete the API server refuses (``403``: no right to delete Jobs, or a webhook
that denies it) in the history clean-up. The clean-up deleted the Jobs task by task, in the
order of their keys, and the first refused delete ended the whole pass: the later tasks' Jobs
beyond their limits were never deleted, at the start nor at any resync, and each pass logged an
error with a traceback that named no missing right. Now the refused Job is left, the other
tasks' Jobs go, and the refusal is one warning that names the RBAC rule
(``missing="jobs: delete in namespace default"``), said again at most every ten minutes.

The real ``crontask run`` (a subprocess) against the Kubernetes emulator, which runs the Jobs'
containers as local processes and here refuses every DELETE of task ``a1``'s Jobs.

Then, in process (``test_cleanup_hold_race.Housekeeping``): each pass tried every doomed Job
again, although its namespace had just refused one or not answered. Nothing could go, so the
doomed Jobs grew by one a run and the DELETEs of each pass with them (465 after 30 runs of a task
without the right to delete, against 30 before), and a delete that failed slowly held the
housekeeping that long for each. Now a namespace that refuses a delete (or does not answer) is
left for the rest of the pass, the other namespaces go on. A webhook's denial is about one
Job, and the pass goes on to the next (a restart, which forgets the Jobs denied, held the
others back one pass a denied Job); Jobs refused before are tried after the others, the one
tried longest ago first, until one is refused again (they were tried in one order: a Job that
could go now stayed for good behind one denied for good). Only an authorization refusal is
said to be a missing RBAC rule, not a webhook's."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_for
from tests.jobs import test_cleanup_hold_race as hold_race
from tests.jobs.conftest import Crontask, jobs, trigger, write_task
from tests.jobs.test_cleanup_hold_race import Housekeeping, play
from tests.jobs.test_lifecycle import ended
from tests.k8s.emulator import Emulator, server
from tests.k8s.emulator import emulator as emulator_module
from tests.k8s.emulator.errors import ApiError
from tests.k8s.emulator.fixtures import serve

REFUSED = re.compile(r"^/apis/batch/v1/namespaces/default/jobs/a1-")


def refuse_a1_deletes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every DELETE of a Job of ``a1`` is answered ``403 Forbidden``, as RBAC or a validating
    webhook would answer it; every other request as usual."""
    route = server.Handler._route

    def refusing(
        self: server.Handler, method: str, path: str, params: dict[str, str], raw: bytes
    ) -> tuple[int, Any] | None:
        if method == "DELETE" and REFUSED.match(path):
            raise emulator_module._status_error(403)
        return route(self, method, path, params, raw)

    monkeypatch.setattr(server.Handler, "_route", refusing)


def refused_deletes(emulator: Emulator) -> int:
    return sum(1 for verb, path in emulator.requests if verb == "DELETE" and REFUSED.match(path))


def run_once(instance: Crontask, key: str, count: int) -> None:
    trigger(instance, key)
    wait_for(f"run {count} of {key}", lambda: len(ended(instance, key)) == count, 30)


@pytest.mark.slow
def test_a_refused_delete_leaves_one_job_and_the_clean_up_goes_on(
    crontask: Callable[..., Crontask],
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``a1`` and ``b1`` keep five successful runs; each runs (``b1`` twice), crontask stops,
    both limits become 0 and ``a1``'s Job may not be deleted. At the next start the clean-up
    judges ``default/a1`` first: its Job stays, ``b1``'s two go, and the refusal, met again at
    every resync (2 s), is one warning without a traceback."""
    tasks = tmp_path / "tasks"
    for name in ("a1", "b1"):
        write_task(tasks, name, "true", successfulRunsHistoryLimit=5)
    instance = crontask()
    instance.wait_log("task added")
    for key, count in (("default/a1", 1), ("default/b1", 1), ("default/b1", 2)):
        run_once(instance, key, count)
    wait_for("three Jobs", lambda: len(jobs(emulator)) == 3)
    instance.stop()

    for name in ("a1", "b1"):
        write_task(tasks, name, "true", successfulRunsHistoryLimit=0)
    refuse_a1_deletes(monkeypatch)
    instance.start()
    wait_for("b1's Jobs deleted", lambda: jobs(emulator, "default.b1") == [], 20)
    # Tried again by every resync, said once: three refusals are two passes after the first.
    wait_for("three refused deletes of a1's Job", lambda: refused_deletes(emulator) >= 3, 20)
    assert len(jobs(emulator, "default.a1")) == 1

    said = instance.log()[instance.log_offset :]
    warnings = [line for line in said.splitlines() if "cannot delete a Job" in line]
    assert len(warnings) == 1, said
    assert "level=warning" in warnings[0]
    assert 'missing="jobs: delete in namespace default"' in warnings[0]
    assert "task=default/a1" in warnings[0]
    assert "Traceback" not in said
    assert "housekeeping failed" not in said


RBAC = (
    'jobs.batch "{name}" is forbidden: User "system:serviceaccount:default:crontask" '
    'cannot delete resource "jobs" in API group "batch" in the namespace "{namespace}"'
)
WEBHOOK = 'admission webhook "keep.example.com" denied the request: this Job is kept'
JOB_PATH = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs/([^/]+)$")


@pytest.fixture
def quiet_emulator() -> Iterator[Emulator]:
    yield from serve()  # runs no Job: the test writes their status


class Refusals:
    """DELETEs of Jobs answered ``403`` by the emulator: every one in ``namespaces`` (RBAC's
    answer), and those of the Jobs named in ``denied`` (an admission webhook's)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.namespaces: set[str] = set()
        self.denied: set[str] = set()
        route = server.Handler._route

        def refusing(
            handler: server.Handler, method: str, path: str, params: dict[str, str], raw: bytes
        ) -> tuple[int, Any] | None:
            found = JOB_PATH.match(path)
            if method == "DELETE" and found:
                namespace, name = found.groups()
                if namespace in self.namespaces:
                    message = RBAC.format(name=name, namespace=namespace)
                    raise ApiError(403, message, reason="Forbidden")
                if name in self.denied:
                    raise ApiError(403, WEBHOOK, reason="Forbidden")
            return route(handler, method, path, params, raw)

        monkeypatch.setattr(server.Handler, "_route", refusing)


def said(caplog: pytest.LogCaptureFixture) -> list[tuple[str, dict[str, Any]]]:
    """The clean-up's warnings: message and fields."""
    return [
        (r.getMessage(), getattr(r, "fields", {}))
        for r in caplog.records
        if r.name == "crontask.jobs" and r.levelno == logging.WARNING
    ]


def test_a_namespace_that_refuses_is_tried_once_a_pass_and_the_others_go_on(
    quiet_emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``a1`` (namespace default, where crontask may not delete Jobs) has three finished Jobs
    beyond its limit, ``b1`` (namespace other) two. Each pass sends one DELETE to default, and
    ``b1``'s Jobs go at the first. The warning names the RBAC rule; once ``a1`` is removed its
    Jobs are said to be a removed task's. With the right back, all go at the next pass."""
    refusals = Refusals(monkeypatch)

    async def body(house: Housekeeping) -> None:
        hold_race.write_task(house.tasks, "a1", successfulRunsHistoryLimit=0)
        hold_race.write_task(house.tasks, "b1", "other", successfulRunsHistoryLimit=0)
        await house.run_pass()
        await house.finished_jobs("default/a1", 3)
        await house.finished_jobs("default/b1", 2)
        refusals.namespaces.add("default")
        with caplog.at_level(logging.INFO, logger="crontask.jobs"):
            assert await house.supervisor.clean(None) == 2
            assert house.names("other") == []
            assert (house.deletes("default"), len(house.names("default"))) == (1, 3)
            for count in (2, 3):  # one more a pass, not one more a Job
                assert await house.supervisor.clean({"default/a1"}) == 0
                assert house.deletes("default") == count
            (message, fields), *more = said(caplog)
            assert more == []
            assert message.startswith("cannot delete a Job beyond the history limits")
            assert fields["missing"] == "jobs: delete in namespace default"
            assert fields["suppressed"] == 0

            (house.tasks / "a1.yaml").unlink()
            await house.run_pass()
            assert await house.supervisor.clean(None) == 0
            assert house.deletes("default") == 4
            message, fields = said(caplog)[-1]
            assert message.startswith("cannot delete a Job of a task no source declares any more")
            assert fields["missing"] == "jobs: delete in namespace default"

            refusals.namespaces.clear()
            assert await house.supervisor.clean(None) == 3
            assert house.names("default") == []
        gone = [r for r in caplog.records if r.getMessage() == "job deleted"]
        whys = sorted(getattr(r, "fields", {})["why"] for r in gone)
        assert whys == ["history", "history", "removed", "removed", "removed"]

    play(quiet_emulator, tmp_path, ["default", "other"], body)


def gone(house: Housekeeping, a1: int, b1: int) -> bool:
    """Whether the watch shows as many finished Jobs of a1 and b1: the next pass would try
    again one deleted that it still shows (a 404, "gone already")."""
    return (house.done("default/a1"), house.done("default/b1")) == (a1, b1)


def test_a_job_a_webhook_denies_holds_no_other(
    quiet_emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A webhook denies the delete of ``a1``'s newest Job, the first tried: a denial is about
    that Job, so the pass goes on and ``a1``'s two others and ``b1``'s, in the same namespace,
    go (a restart forgets which Jobs were denied: each pass held them back again). The next
    pass tries the denied one again, once. The warning does not say that an RBAC rule is
    missing."""
    refusals = Refusals(monkeypatch)

    async def body(house: Housekeeping) -> None:
        hold_race.write_task(house.tasks, "a1", successfulRunsHistoryLimit=0)
        hold_race.write_task(house.tasks, "b1", successfulRunsHistoryLimit=0)
        await house.run_pass()
        *older, newest = await house.finished_jobs("default/a1", 3)
        await house.finished_jobs("default/b1", 1)
        refusals.denied.add(newest)
        with caplog.at_level(logging.WARNING, logger="crontask.jobs"):
            assert await house.supervisor.clean(None) == 3
            assert (house.deletes("default"), house.names("default")) == (4, [newest])
            await house.until("the watch to see them gone", lambda: gone(house, 1, 0))
            assert await house.supervisor.clean(None) == 0
            assert house.deletes("default") == 5
        ((message, fields),) = said(caplog)
        assert message.startswith("cannot delete a Job beyond the history limits")
        assert "missing" not in fields
        assert fields["request"] == "jobs: delete in namespace default"
        assert fields["job"] == newest
        assert "admission webhook" in fields["error"]
        assert older  # both went

    play(quiet_emulator, tmp_path, ["default"], body)


def test_jobs_denied_before_are_tried_again_each_in_turn(
    quiet_emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A webhook denies two of ``a1``'s three Jobs for a while, then lets the older go. A pass
    tries the Jobs denied before after the others, the one tried longest ago first, and leaves
    their namespace at the first that is denied again (one more DELETE a pass, not one more a
    Job denied): the denied Job that sorted first held the other back for good."""
    refusals = Refusals(monkeypatch)

    async def body(house: Housekeeping) -> None:
        hold_race.write_task(house.tasks, "a1", successfulRunsHistoryLimit=0)
        await house.run_pass()
        _, older, newest = await house.finished_jobs("default/a1", 3)
        refusals.denied |= {older, newest}
        assert await house.supervisor.clean(None) == 1  # each tried: the oldest goes
        assert (house.deletes("default"), house.names("default")) == (3, [older, newest])
        await house.until("the watch to see it gone", lambda: house.done("default/a1") == 2)
        assert await house.supervisor.clean(None) == 0  # newest first (newest first, tied)
        assert house.deletes("default") == 4
        refusals.denied.discard(older)
        assert await house.supervisor.clean(None) == 1  # older, tried longest ago, goes
        assert (house.deletes("default"), house.names("default")) == (6, [newest])
        await house.until("the watch to see it gone", lambda: house.done("default/a1") == 1)
        for count in (7, 8):
            assert await house.supervisor.clean(None) == 0
            assert house.deletes("default") == count

    play(quiet_emulator, tmp_path, ["default"], body)
