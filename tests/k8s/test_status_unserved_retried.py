"""A status write answered ``404`` without naming its object (``the server could not find the
requested resource``: what a kube-apiserver answers for a custom resource's path while its CRD's
handler is not ready, just after a restart or during an upgrade) is not taken for a deleted
object: the object is read again, and unless that read says it is gone the write is retried
after the writer's backoff, for one round of its attempts, so it lands once the server serves
``/status`` again within it. A ``/status`` still not served when the round runs out (no CRD, or
an old one) drops the write with a warning (once a while), and nothing more is sent for it: an
old CRD costs a round a write, not requests without end; and a stop does not wait for it.

Against the emulator, which answers as the real API server does: a deleted object's ``404``
names it in ``details``; a path it does not serve (``inject_not_served``, or a CRD without the
subresource) is ``the server could not find the requested resource`` with no details."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.model import API_GROUP
from reconciler.sinks.kubernetes import StatusWriter
from tests.helpers import wait_for
from tests.k8s.emulator import Emulator
from tests.k8s.test_fault_api import crontask, records, run_with_crontask, status_of
from tests.k8s.test_status_no_subresource import (
    UNSERVED,
    UNSERVED_FOR_A,
    replace_crd,
    warnings,
)
from tests.k8s.test_status_writer_reread_failed import HookedEmulator, create, hooked, setting

__all__ = ["hooked"]  # the fixture, used by name

STATUS = r"/crontasks/a/status$"


def requests_of(emulator: HookedEmulator, name: str) -> list[str]:
    return [m for m, path, _ in emulator.arrived if path.endswith(f"/crontasks/{name}/status")]


def written_once(api: Any, ref: Any, caplog: pytest.LogCaptureFixture) -> list[Any]:
    """What a writer of one worker said of one write of ``activeCount: 1`` to ``ref``, once it
    has nothing left to do (its warnings in ``caplog``)."""
    writer = StatusWriter(api, workers=1, backoff=0.02, max_backoff=0.1)
    outcomes: list[Any] = []
    writer.start()
    try:
        with caplog.at_level(logging.WARNING, logger="crontask.sinks"):
            writer.submit(ref, setting(activeCount=1), written=outcomes.append)
            assert writer.flush(5.0)
    finally:
        writer.stop(timeout=2.0)
    return outcomes


def test_a_write_answered_one_unnamed_404_is_retried_and_lands(
    hooked: tuple[HookedEmulator, Any], caplog: pytest.LogCaptureFixture
) -> None:
    emulator, api = hooked
    ref = create(emulator)
    emulator.inject_not_served("PATCH", STATUS)
    outcomes = written_once(api, ref, caplog)
    assert outcomes == [{"activeCount": 1}]
    (stored,) = emulator.objects("ct")
    assert stored["status"] == {"activeCount": 1}
    # The 404, the read that found the object there, the write again (after the backoff).
    assert requests_of(emulator, "a") == ["PATCH", "GET", "PATCH"]
    assert warnings(caplog) == []  # one that passed at the next attempt: nothing to say


def test_an_unnamed_404_then_a_read_naming_the_object_drops_the_write(
    hooked: tuple[HookedEmulator, Any], caplog: pytest.LogCaptureFixture
) -> None:
    emulator, api = hooked
    ref = create(emulator)
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        API_GROUP, VERSION, "default", PLURAL, "a"
    )
    emulator.inject_not_served("PATCH", STATUS)
    outcomes = written_once(api, ref, caplog)
    assert outcomes == [None]  # gone: dropped, in silence
    assert warnings(caplog) == []
    assert requests_of(emulator, "a") == ["PATCH", "GET"]  # the read said: deleted


def test_a_missing_status_subresource_costs_one_round_then_the_write_is_dropped(
    hooked: tuple[HookedEmulator, Any], caplog: pytest.LogCaptureFixture
) -> None:
    emulator, api = hooked
    replace_crd(api, status_subresource=False)
    a, b = create(emulator, "a"), create(emulator, "b")
    writer = StatusWriter(api, workers=1, attempts=3, backoff=0.02, max_backoff=0.1)
    outcomes: list[Any] = []
    writer.start()
    try:
        with caplog.at_level(logging.WARNING, logger="crontask.sinks"):
            writer.submit(a, setting(activeCount=1), written=outcomes.append)
            wait_for("a's write given up", lambda: outcomes == [None], timeout=10)
            # One round: each 404 read the object once (its /status, not served either).
            round_of_a = requests_of(emulator, "a")
            assert round_of_a == ["PATCH", "GET"] * 3
            # Another object's write, a round of its own, proves the writer is still at work
            # over that time: it sends nothing more for a.
            writer.submit(b, setting(activeCount=1), written=outcomes.append)
            wait_for("b's write given up", lambda: outcomes == [None, None], timeout=10)
            assert requests_of(emulator, "b") == ["PATCH", "GET"] * 3
            assert requests_of(emulator, "a") == round_of_a
            assert writer.idle()  # nothing kept to be tried again
    finally:
        writer.stop(timeout=2.0)
    assert writer.writes == 0
    assert warnings(caplog) == [UNSERVED_FOR_A]  # once for both: it comes once every ten minutes


def test_a_stop_does_not_wait_for_a_status_that_is_not_served(
    hooked: tuple[HookedEmulator, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """The write is dropped when the stop begins, as it was before writes like it were retried,
    not kept until the stop's timeout (the default round, ~8 s, outlasts the default 5 s)."""
    emulator, api = hooked
    replace_crd(api, status_subresource=False)
    ref = create(emulator)
    # A backoff far longer than the test: the write waits in its round when the stop comes.
    writer = StatusWriter(api, workers=1, backoff=60.0, max_backoff=60.0)
    outcomes: list[Any] = []
    writer.start()
    try:
        with caplog.at_level(logging.WARNING, logger="crontask.sinks"):
            writer.submit(ref, setting(activeCount=1), written=outcomes.append)
            wait_for("the first 404 and its read", lambda: len(requests_of(emulator, "a")) == 2)
    finally:
        # Were the write waited for, the flush would time out and the write be left
        # unfinished, its callback never called.
        writer.stop(timeout=2.0)
    assert outcomes == [None]
    assert requests_of(emulator, "a") == ["PATCH", "GET"]
    assert [message for message, _ in warnings(caplog)] == [UNSERVED]


@pytest.mark.usefixtures("real_crd")
def test_a_finished_run_whose_write_got_an_unnamed_404_is_written_without_another_run(
    tmp_path: Path, kubeconfig: Path, emulator: Emulator, k8s_api_client: Any
) -> None:
    """What an API server restart did to a run that ended just then: its ``lastRun`` stayed
    ``running`` until the task's next run or the 5-minute resync."""
    api = client.CustomObjectsApi(k8s_api_client)
    gate = tmp_path / "gate"
    (tmp_path / "tasks").mkdir()
    # Yearly, so that only the run-now starts it; it runs until the test opens the gate.
    body = crontask(
        "gated", ["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done"], "0 0 1 1 *"
    )
    body["metadata"]["annotations"] = {"crontask.dev/run-now": "1"}
    api.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, body)

    def scenario() -> None:
        running = wait_for(
            "the gated run reported running",
            lambda: (
                (status_of(emulator, "gated").get("lastRun") or {}).get("result") == "running"
                and status_of(emulator, "gated")["lastRun"]
            ),
        )
        emulator.inject_not_served("PATCH", r"/crontasks/gated/status$")
        asked = len(emulator.requests)
        gate.touch()  # the run ends; the write of its end is answered 404
        ended = wait_for(
            "the gated run's end written",
            lambda: (
                status_of(emulator, "gated")["lastRun"]["result"] == "succeeded"
                and status_of(emulator, "gated")
            ),
            timeout=15,
        )
        assert ended["lastRun"]["id"] == running["id"]
        assert ended.get("activeCount", 0) == 0
        patches = [
            p for m, p in emulator.requests[asked:] if m == "PATCH" and p.endswith("/status")
        ]
        assert len(patches) >= 2  # the one answered 404 and the one that landed

    run_with_crontask(tmp_path, kubeconfig, scenario)
    assert len(records(tmp_path, "default/gated")) == 1  # no other run wrote it
