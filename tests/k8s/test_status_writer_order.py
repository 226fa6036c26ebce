"""The status writer's order and its ``written`` callback, against the emulator: a run-now's
write goes before a queue of others, namespaces take turns, and the callback says which write
the API server accepted (only then may a run-now's run start)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.model import API_GROUP
from reconciler.core.status import ObjectRef
from reconciler.sinks.kubernetes import StatusWriter
from tests.helpers import wait_for
from tests.k8s.emulator import Emulator

pytestmark = pytest.mark.usefixtures("real_crd")


def create(emulator: Emulator, name: str, namespace: str = "default") -> ObjectRef:
    obj = emulator.create(
        {
            "apiVersion": f"{API_GROUP}/{VERSION}",
            "kind": "CronTask",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"schedule": "* * * * *", "command": {"args": ["true"]}},
        }
    )
    meta = obj["metadata"]
    return ObjectRef(namespace, name, meta["uid"], meta["resourceVersion"], meta["generation"])


def setting(**fields: Any) -> Any:
    def build(current: Mapping[str, Any]) -> dict[str, Any]:
        return {**current, **fields}

    return build


def status_writes(emulator: Emulator) -> list[str]:
    """The objects whose status was patched, ``namespace/name``, in the order the server saw."""
    prefix = f"/apis/{API_GROUP}/{VERSION}/namespaces/"
    return [
        path.removeprefix(prefix).replace(f"/{PLURAL}/", "/").removesuffix("/status")
        for method, path in emulator.requests
        if method == "PATCH" and path.startswith(prefix) and path.endswith("/status")
    ]


def stored(emulator: Emulator, name: str) -> dict[str, Any]:
    (found,) = [o for o in emulator.objects("ct") if o["metadata"]["name"] == name]
    status: dict[str, Any] = found.get("status") or {}
    return status


@pytest.fixture
def one_worker(k8s_api_client: Any) -> Iterator[StatusWriter]:
    """Not started: the test queues first, then starts it, so the order is the writer's own."""
    writer = StatusWriter(k8s_api_client, workers=1, backoff=0.02, max_backoff=0.1)
    yield writer
    writer.stop(timeout=2.0)


def test_a_run_now_write_goes_before_a_queue_of_others(
    emulator: Emulator, one_worker: StatusWriter
) -> None:
    noisy = [create(emulator, f"n{i:02d}", "noisy") for i in range(30)]
    mine = create(emulator, "a")
    for ref in noisy:
        one_worker.submit(ref, setting(activeCount=0))
    one_worker.submit(mine, setting(lastRunNow="v1"), urgent=True)
    one_worker.submit(noisy[0], setting(activeCount=1))  # a newer one keeps its place
    one_worker.start()
    assert one_worker.flush(10.0)
    order = status_writes(emulator)
    assert order[0] == "default/a"
    assert order[1:] == [f"noisy/{ref.name}" for ref in noisy]
    assert stored(emulator, "n00") == {"activeCount": 1}


def test_namespaces_take_turns(emulator: Emulator, one_worker: StatusWriter) -> None:
    """Thousands of objects created in one namespace do not hold back another's status."""
    noisy = [create(emulator, f"n{i:02d}", "noisy") for i in range(30)]
    late = create(emulator, "late")
    for ref in noisy:
        one_worker.submit(ref, setting(activeCount=0))
    one_worker.submit(late, setting(activeCount=0))
    one_worker.start()
    assert one_worker.flush(10.0)
    assert status_writes(emulator)[:3] == ["noisy/n00", "default/late", "noisy/n01"]


def test_written_is_told_only_once_the_server_accepted_the_write(
    emulator: Emulator, one_worker: StatusWriter
) -> None:
    ref = create(emulator, "a")
    told: list[Mapping[str, Any] | None] = []
    emulator.outage(status=503)
    one_worker.start()
    one_worker.submit(ref, setting(lastRunNow="v1"), urgent=True, written=told.append)
    wait_for("three refused attempts", lambda: len(status_writes(emulator)) >= 3)
    assert told == []
    assert not one_worker.flush(0.05)  # still to be written
    emulator.heal()
    assert one_worker.flush(10.0)
    assert told == [{"lastRunNow": "v1"}]
    assert stored(emulator, "a") == {"lastRunNow": "v1"}


def test_written_hears_of_the_newer_write_that_replaced_its_own(
    emulator: Emulator, one_worker: StatusWriter
) -> None:
    ref = create(emulator, "a")
    told: list[Mapping[str, Any] | None] = []
    one_worker.submit(ref, setting(lastRunNow="v1"), urgent=True, written=told.append)
    one_worker.submit(ref, setting(lastRunNow="v1", activeCount=1))  # the newest build wins
    one_worker.start()
    assert one_worker.flush(10.0)
    assert told == [{"lastRunNow": "v1", "activeCount": 1}]
    assert status_writes(emulator) == ["default/a"]


def test_written_hears_none_when_no_write_was_made(
    emulator: Emulator, one_worker: StatusWriter
) -> None:
    """Nothing differed (the value is stored already, say by another replica), or the
    object is gone: nothing was recorded by this write."""
    stale = create(emulator, "a")
    gone = ObjectRef("default", "gone", "uid-x", "1", 1)
    told: list[tuple[str, Mapping[str, Any] | None]] = []
    one_worker.start()
    one_worker.submit(stale, setting(lastRunNow="v1"))
    assert one_worker.flush(10.0)
    # The stale view (no lastRunNow) is what the writer is handed again: the write carries
    # that view's version, is refused (409), and the re-read shows the value stored.
    one_worker.forget(stale.key)
    one_worker.submit(
        stale,
        setting(lastRunNow="v1", activeCount=2),
        written=lambda patch: told.append(("stale", patch)),
    )
    one_worker.submit(
        gone, setting(lastRunNow="v1"), written=lambda patch: told.append(("gone", patch))
    )
    assert one_worker.flush(10.0)
    assert sorted(told, key=lambda t: t[0]) == [("gone", None), ("stale", {"activeCount": 2})]
    assert one_worker.conflicts == 1


def test_a_failing_callback_does_not_stop_the_writer(
    emulator: Emulator, one_worker: StatusWriter
) -> None:
    ref = create(emulator, "a")
    told = threading.Event()

    def broken(patch: Mapping[str, Any] | None) -> None:
        raise RuntimeError("a bug in the callback")

    one_worker.start()
    one_worker.submit(ref, setting(activeCount=1), written=broken)
    one_worker.submit(create(emulator, "b"), setting(activeCount=1), written=lambda _: told.set())
    assert one_worker.flush(10.0)
    assert told.is_set()
