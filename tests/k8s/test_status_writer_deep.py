"""The status writer reads the answers to its writes whatever their depth: a CronTask whose
``spec.job.spec`` nests deeper than Python's JSON decoder goes (the CRD leaves it open) used to
fail every status write with RecursionError, retried every few seconds for ever."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.model import API_GROUP
from reconciler.sinks.kubernetes import StatusWriter
from tests.k8s.emulator import Emulator
from tests.k8s.test_source_kubernetes_deep import DEEP, LEVELS, deep_job
from tests.k8s.test_status_writer import ref_of, setting, status_writes, stored

pytestmark = pytest.mark.usefixtures("real_crd")


@pytest.fixture
def writer(k8s_api_client: Any) -> Iterator[StatusWriter]:
    w = StatusWriter(k8s_api_client, backoff=0.02, max_backoff=0.1)
    w.start()
    yield w
    w.stop(timeout=2.0)


def test_a_deep_objects_status_is_written_once(
    k8s_api_client: Any, emulator: Emulator, writer: StatusWriter
) -> None:
    emulator.raw_values[DEEP] = b'{"x":' * LEVELS + b"1" + b"}" * LEVELS
    api = client.CustomObjectsApi(k8s_api_client)
    body = {**deep_job("a"), "apiVersion": f"{API_GROUP}/{VERSION}", "kind": "CronTask"}
    # Undecoded: the answer is as deep as the object.
    api.create_namespaced_custom_object(
        API_GROUP, VERSION, "default", PLURAL, body, _preload_content=False
    )
    obj = stored(emulator)
    writer.submit(ref_of(obj), setting(observedGeneration=1))
    assert writer.flush(5.0)
    assert (writer.writes, writer.failures) == (1, 0)
    assert stored(emulator)["status"] == {"observedGeneration": 1}
    # The answer was read: the writer knows what it wrote, and the same status again is no write.
    writer.submit(ref_of(obj), setting(observedGeneration=1))
    assert writer.flush(5.0)
    assert status_writes(emulator) == 1
