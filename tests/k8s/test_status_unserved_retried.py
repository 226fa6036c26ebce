"""A status write answered ``404`` without naming its object (``the server could not find the
requested resource``: what a kube-apiserver answers for a custom resource's path while its CRD's
handler is not ready, just after a restart or during an upgrade) is not taken for a deleted
object: the object is read again, and unless that read says it is gone the write is retried
after the writer's backoff, so it lands once the server serves ``/status`` again. A missing
``/status`` that lasts is retried so too, never in a loop, and said once (with the fix).

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
from tests.k8s.test_status_no_subresource import crd, warnings
from tests.k8s.test_status_writer_reread_failed import HookedEmulator, create, hooked, setting

__all__ = ["hooked"]  # the fixture, used by name

STATUS = r"/crontasks/a/status$"


def status_requests(emulator: HookedEmulator) -> list[str]:
    return [method for method, path, _ in emulator.arrived if path.endswith("/status")]


def replace_crd(api: Any, *, status_subresource: bool) -> None:
    """crontask's CRD applied again over the one in place, with or without ``/status``."""
    made = crd(status_subresource=status_subresource)
    extensions: Any = client.ApiextensionsV1Api(api)  # untyped dicts
    name = f"{PLURAL}.{API_GROUP}"
    current = extensions.read_custom_resource_definition(name)
    made["metadata"]["resourceVersion"] = current.metadata.resource_version
    extensions.replace_custom_resource_definition(name, made)


def test_a_write_answered_one_unnamed_404_is_retried_and_lands(
    hooked: tuple[HookedEmulator, Any], caplog: pytest.LogCaptureFixture
) -> None:
    emulator, api = hooked
    ref = create(emulator)
    emulator.inject_not_served("PATCH", STATUS)
    writer = StatusWriter(api, workers=1, backoff=0.02, max_backoff=0.1)
    outcomes: list[Any] = []
    writer.start()
    try:
        with caplog.at_level(logging.WARNING, logger="crontask.sinks"):
            writer.submit(ref, setting(activeCount=1), written=outcomes.append)
            assert writer.flush(5.0)
    finally:
        writer.stop(timeout=2.0)
    assert outcomes == [{"activeCount": 1}]
    (stored,) = emulator.objects("ct")
    assert stored["status"] == {"activeCount": 1}
    # The 404, the read that found the object there, the write again (after the backoff).
    assert status_requests(emulator) == ["PATCH", "GET", "PATCH"]
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
    writer = StatusWriter(api, workers=1, backoff=0.02, max_backoff=0.1)
    outcomes: list[Any] = []
    writer.start()
    try:
        with caplog.at_level(logging.WARNING, logger="crontask.sinks"):
            writer.submit(ref, setting(activeCount=1), written=outcomes.append)
            assert writer.flush(5.0)
    finally:
        writer.stop(timeout=2.0)
    assert outcomes == [None]  # gone: dropped, in silence
    assert warnings(caplog) == []
    assert status_requests(emulator) == ["PATCH", "GET"]  # the read said: deleted


def test_a_missing_status_subresource_is_retried_with_backoff_said_once_and_then_written(
    hooked: tuple[HookedEmulator, Any], caplog: pytest.LogCaptureFixture
) -> None:
    emulator, api = hooked
    replace_crd(api, status_subresource=False)
    ref = create(emulator)
    # Three attempts a round, each followed by a wait uniform in [d / 2, d] (d = 0.1, 0.2,
    # 0.4), then max_backoff: a round takes 0.05 + 0.1 + 0.2 + 0.4 s at the least.
    writer = StatusWriter(api, workers=1, attempts=3, backoff=0.1, max_backoff=0.4)
    outcomes: list[Any] = []
    writer.start()
    try:
        with caplog.at_level(logging.WARNING, logger="crontask.sinks"):
            writer.submit(ref, setting(activeCount=1), written=outcomes.append)
            wait_for(
                "two rounds of attempts and one more",
                lambda: status_requests(emulator).count("PATCH") >= 7,
                timeout=15,
            )
            assert outcomes == []  # not given up: still waiting to be written
            replace_crd(api, status_subresource=True)  # the fix the warning names
            assert writer.flush(10.0)
    finally:
        writer.stop(timeout=2.0)
    assert outcomes == [{"activeCount": 1}]
    (stored,) = emulator.objects("ct")
    assert stored["status"] == {"activeCount": 1}
    patches = [at for m, path, at in emulator.arrived if m == "PATCH" and path.endswith("/status")]
    # No spin: two whole rounds lie between the first PATCH and the seventh (a writer that
    # tried again at once would have sent hundreds by then).
    assert patches[6] - patches[0] >= 2 * (0.05 + 0.1 + 0.2 + 0.4)
    # Each 404 read the object once (its /status, not served either), no more; the last
    # PATCH landed.
    sent = status_requests(emulator)
    assert sent == ["PATCH", "GET"] * sent.count("GET") + ["PATCH"]
    assert warnings(caplog) == [
        (
            "status not written: the CronTask CRD is missing or has no status subresource",
            {
                "task": "default/a",
                "crd": f"{PLURAL}.{API_GROUP}",
                "fix": "crontask crd | kubectl apply -f -",
                "in_seconds": 0.4,
                "suppressed": 0,
            },
        )
    ]  # once, though two rounds ran out: it comes once every ten minutes


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
