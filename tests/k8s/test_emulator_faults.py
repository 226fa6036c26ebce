"""Fault hooks: compact, inject_conflict, inject_errors, outage/heal, cut_watches."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import load_crd
from tests.k8s.support import (
    GROUP,
    PLURAL,
    VERSION,
    WatchCollector,
    crontask,
    error_body,
    new_watch,
)

pytestmark = pytest.mark.usefixtures("crontask_crd")


@pytest.fixture
def api(k8s_api_client: Any) -> Any:
    return client.CustomObjectsApi(k8s_api_client)


def test_compact_makes_old_watches_expire(api: Any, emulator: Emulator) -> None:
    rv = emulator.resource_version
    api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, crontask("a"))
    emulator.compact()
    with pytest.raises(ApiException) as err:
        # timeout_seconds turns off the client's single retry after a 410.
        list(
            new_watch().stream(
                api.list_namespaced_custom_object,
                GROUP,
                VERSION,
                "default",
                PLURAL,
                resource_version=rv,
                timeout_seconds=5,
            )
        )
    assert err.value.status == 410
    assert "Expired" in str(err.value.reason)


def test_inject_conflict(api: Any, emulator: Emulator) -> None:
    obj = api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, crontask("c"))
    emulator.inject_conflict(times=3)
    with pytest.raises(ApiException) as put:
        api.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "c", obj)
    with pytest.raises(ApiException) as patch:
        api.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "c", {"spec": {}})
    with pytest.raises(ApiException) as status:
        api.patch_namespaced_custom_object_status(
            GROUP, VERSION, "default", PLURAL, "c", {"status": {"runs": 1}}
        )
    for err in (put, patch, status):
        body = error_body(err.value)
        assert (err.value.status, body["reason"], body["kind"]) == (409, "Conflict", "Status")
    # Reads and creates are not writes of an existing object: unaffected.
    emulator.inject_conflict()
    api.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "c")
    api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, crontask("d"))
    with pytest.raises(ApiException):
        api.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "d", {"spec": {}})
    done = api.patch_namespaced_custom_object_status(
        GROUP, VERSION, "default", PLURAL, "c", {"status": {"runs": 1}}
    )
    assert done["status"] == {"runs": 1}


@pytest.mark.parametrize(("code", "reason"), [(503, "ServiceUnavailable"), (500, "InternalError")])
def test_inject_errors(api: Any, emulator: Emulator, code: int, reason: str) -> None:
    emulator.inject_errors(status=code, times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as err:
            api.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
        body = error_body(err.value)
        assert err.value.status == code
        assert (body["kind"], body["status"], body["reason"], body["code"]) == (
            "Status",
            "Failure",
            reason,
            code,
        )
    assert api.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)["items"] == []


def test_an_outage_answers_every_request_until_healed(api: Any, emulator: Emulator) -> None:
    emulator.outage(status=500)
    for _ in range(3):
        with pytest.raises(ApiException) as err:
            api.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
        assert (err.value.status, error_body(err.value)["reason"]) == (500, "InternalError")
    emulator.heal()
    assert api.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)["items"] == []


def test_an_outage_with_a_delay_holds_requests_until_the_client_gives_up(
    api: Any, emulator: Emulator
) -> None:
    emulator.outage(status=None, delay=30)
    began = time.monotonic()
    # (urllib3 retries a read timeout a few times, then raises MaxRetryError.)
    with pytest.raises((urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.MaxRetryError)):
        api.list_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, _request_timeout=(5, 0.5)
        )
    assert time.monotonic() - began < 20  # the client's read timeout, not the 30 s hold
    # Healing answers what is held at once, normally.
    emulator.outage(status=504, delay=30)
    held: list[Any] = []
    reader = threading.Thread(
        target=lambda: held.append(
            api.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
        )
    )
    asked = len(emulator.requests)
    reader.start()
    deadline = time.monotonic() + 5
    while len(emulator.requests) == asked and time.monotonic() < deadline:  # now held
        time.sleep(0.01)
    emulator.heal()
    reader.join(20)
    assert held
    assert held[0]["items"] == []


def test_cut_watches_ends_client_streams(api: Any, emulator: Emulator) -> None:
    rv = emulator.resource_version
    collectors = [
        WatchCollector(
            api.list_namespaced_custom_object,
            GROUP,
            VERSION,
            "default",
            PLURAL,
            resource_version=rv,
        ).start()
        for _ in range(2)
    ]
    emulator.wait_for_watches(2, PLURAL)
    api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, crontask("seen"))
    for c in collectors:
        assert c.next()["type"] == "ADDED"
    emulator.cut_watches()
    for c in collectors:
        c.join()
        assert isinstance(c.error, urllib3.exceptions.ProtocolError)
    assert emulator.open_watches() == 0
    # New watches work after the cut.
    after = WatchCollector(
        api.list_namespaced_custom_object, GROUP, VERSION, "default", PLURAL, resource_version=rv
    ).start()
    try:
        assert after.next()["raw_object"]["metadata"]["name"] == "seen"
    finally:
        after.stop()


def test_a_watch_the_client_stops_is_closed_on_the_server(api: Any, emulator: Emulator) -> None:
    api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, crontask("a"))
    collector = WatchCollector(
        api.list_namespaced_custom_object, GROUP, VERSION, "default", PLURAL
    ).start()
    assert collector.next()["type"] == "ADDED"  # the client holds the response: stop() can cut
    collector.stop()
    assert collector.finished.is_set()
    deadline = time.monotonic() + 5
    while emulator.open_watches() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert emulator.open_watches() == 0


def test_stop_ends_open_watches_promptly(tmp_path: Path) -> None:
    emu = Emulator()
    emu.start()
    emu.create_crd(load_crd())
    api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(emu.write_kubeconfig(tmp_path / "kubeconfig"))
    )
    try:
        api = client.CustomObjectsApi(api_client)
        collector = WatchCollector(
            api.list_namespaced_custom_object, GROUP, VERSION, "default", PLURAL
        ).start()
        emu.wait_for_watches(1)
        began = time.monotonic()
        emu.stop()
        assert time.monotonic() - began < 1.0
        collector.join()
        assert collector.error is not None
    finally:
        emu.stop()
        api_client.close()
