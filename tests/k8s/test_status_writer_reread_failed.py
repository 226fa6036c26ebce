"""After a ``409 Conflict`` the status writer reads the object again. A read that fails (a
``5xx``) is no fresh view: the next attempt comes after the writer's usual backoff, not at once
on the same stale version (which only conflicts again), and the read takes its token from the
writer's bucket like any request.

Against an emulator that fails the status reads a test asks it to, as they arrive."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.model import API_GROUP
from reconciler.core.status import ObjectRef
from reconciler.sinks.kubernetes import StatusWriter
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.server import RequestRecord

REAL_CRD = Path(__file__).resolve().parents[2] / "deploy" / "crd.yaml"
BACKOFF = 0.4  # the writer's first retry delay: uniform in [BACKOFF / 2, BACKOFF]


class HookedEmulator(Emulator):
    """The emulator, calling ``hook`` with each request as it arrives, before it is answered
    (on the server's thread), so a test acts at an exact point of a client's conversation;
    ``arrived`` keeps each request's method, path and arrival (monotonic)."""

    def __init__(self) -> None:
        super().__init__()
        self.hook: Callable[[RequestRecord], None] = lambda record: None
        self.arrived: list[tuple[str, str, float]] = []

    def _record(self, record: RequestRecord) -> None:
        super()._record(record)
        self.arrived.append((record.method, record.path, time.monotonic()))
        self.hook(record)


@pytest.fixture
def hooked(tmp_path: Path) -> Iterator[tuple[HookedEmulator, Any]]:
    """A started :class:`HookedEmulator` with the real CRD, and a client of it."""
    emu = HookedEmulator()
    with emu:
        emu.create_crd(yaml.safe_load(REAL_CRD.read_text()))
        kubeconfig = emu.write_kubeconfig(tmp_path / "kubeconfig")
        api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        try:
            yield emu, api
        finally:
            api.close()
    assert not emu.server_errors


def create(emulator: Emulator, name: str = "a") -> ObjectRef:
    obj = emulator.create(
        {
            "apiVersion": f"{API_GROUP}/{VERSION}",
            "kind": "CronTask",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"schedule": "* * * * *", "command": {"args": ["true"]}},
        }
    )
    meta = obj["metadata"]
    return ObjectRef("default", name, meta["uid"], meta["resourceVersion"], meta["generation"])


def setting(**fields: Any) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    def build(current: Mapping[str, Any]) -> dict[str, Any]:
        return {**current, **fields}

    return build


def test_a_failed_read_after_a_conflict_is_backed_off_and_takes_a_token(
    hooked: tuple[HookedEmulator, Any],
) -> None:
    emulator, api = hooked
    ref = create(emulator)
    # Six tokens, never refilled in the test: exactly what the requests below take.
    writer = StatusWriter(api, workers=1, qps=0.001, burst=6, backoff=BACKOFF)
    writer.start()
    try:
        writer.submit(ref, setting(activeCount=0))  # 1: the writer now holds a version
        assert writer.flush(5.0)
        # Someone else writes meanwhile: the writer's next patch carries a stale version.
        client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
            API_GROUP,
            VERSION,
            "default",
            PLURAL,
            "a",
            {"status": {"lastRunNow": "x"}},
            _content_type="application/merge-patch+json",
        )
        failing = [1]

        def fail_the_first_status_read(record: RequestRecord) -> None:
            if record.method == "GET" and record.path.endswith("/status") and failing[0]:
                failing[0] -= 1
                emulator.inject_errors(status=500)  # this very request's answer

        emulator.hook = fail_the_first_status_read
        start = len(emulator.arrived)
        writer.submit(ref, setting(activeCount=1))
        assert writer.flush(10.0)
    finally:
        writer.stop(timeout=2.0)
    # 2: 409; 3: the read fails; 4: 409 again; 5: the read; 6: the write.
    sent = [(method, at) for method, path, at in emulator.arrived[start:] if "/status" in path]
    assert [method for method, _ in sent] == ["PATCH", "GET", "PATCH", "GET", "PATCH"]
    assert writer.writes == 2
    assert writer.conflicts == 2
    assert sent[2][1] - sent[1][1] >= BACKOFF / 2  # backed off after the failed read
    assert not writer._bucket.try_take()  # the reads took their tokens
    (stored,) = emulator.objects("ct")
    assert stored["status"] == {"activeCount": 1, "lastRunNow": "x"}
