"""A CronTask CRD without the ``/status`` subresource (made by hand, or an old one): every status
write is answered ``404``, not because the object is gone but because the API server serves no
such path. That is said in a warning naming the fix (apply crontask's CRD), once, and the writes
wait to be retried, not taken for a deleted object and dropped in silence. A ``404`` that names
the object (it was deleted) stays silent. Once the CRD has the subresource again, the writes
that waited go through (``test_status_unserved_retried``).

Against the emulator, which answers as the real API server does: a deleted object's ``404``
names it in ``details``, a path it does not serve is ``the server could not find the requested
resource`` with no details."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.model import API_GROUP
from reconciler.sinks.kubernetes import StatusWriter
from tests.helpers import wait_for
from tests.k8s.emulator import Emulator
from tests.k8s.test_status_writer_reread_failed import create, setting

REAL_CRD = Path(__file__).resolve().parents[2] / "deploy" / "crd.yaml"


def crd(*, status_subresource: bool) -> dict[str, Any]:
    loaded = yaml.safe_load(REAL_CRD.read_text())
    assert isinstance(loaded, dict)
    made = copy.deepcopy(loaded)
    if not status_subresource:
        for version in made["spec"]["versions"]:
            version.pop("subresources", None)
    return made


def warnings(caplog: pytest.LogCaptureFixture) -> list[tuple[str, Any]]:
    return [
        (r.message, getattr(r, "fields", None))
        for r in caplog.records
        if r.name == "crontask.sinks" and r.levelno >= logging.WARNING
    ]


def test_a_crd_without_the_status_subresource_is_named_once_with_the_fix(
    emulator: Emulator, k8s_api_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.create_crd(crd(status_subresource=False))
    a, b = create(emulator, "a"), create(emulator, "b")
    writer = StatusWriter(k8s_api_client, workers=1, attempts=2, backoff=0.02, max_backoff=0.1)
    outcomes: list[Any] = []
    writer.start()
    try:
        with caplog.at_level(logging.WARNING, logger="crontask.sinks"):
            writer.submit(a, setting(activeCount=1), written=outcomes.append)
            writer.submit(b, setting(activeCount=1), written=outcomes.append)
            # Each object's attempts run out twice (``failures`` counts such rounds).
            wait_for("four rounds of attempts", lambda: writer.failures >= 4)
    finally:
        writer.stop(timeout=0.5)
    assert outcomes == []  # not written, and not given up: they wait to be retried
    assert warnings(caplog) == [
        (
            "status not written: the CronTask CRD is missing or has no status subresource",
            {
                "task": "default/a",
                "crd": f"{PLURAL}.{API_GROUP}",
                "fix": "crontask crd | kubectl apply -f -",
                "in_seconds": 0.1,
                "suppressed": 0,
            },
        )
    ]
    assert writer.writes == 0


def test_a_deleted_object_stays_silent_and_a_fixed_crd_is_written_to(
    emulator: Emulator, k8s_api_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.create_crd(crd(status_subresource=True))
    gone, kept = create(emulator, "gone"), create(emulator, "kept")
    client.CustomObjectsApi(k8s_api_client).delete_namespaced_custom_object(
        API_GROUP, VERSION, "default", PLURAL, "gone"
    )
    writer = StatusWriter(k8s_api_client, workers=1, backoff=0.02, max_backoff=0.1)
    outcomes: list[Any] = []
    writer.start()
    try:
        with caplog.at_level(logging.WARNING, logger="crontask.sinks"):
            writer.submit(gone, setting(activeCount=1), written=outcomes.append)
            assert writer.flush(5.0)
            assert outcomes == [None]
            assert warnings(caplog) == []  # deleted: nothing to say

            writer.submit(kept, setting(activeCount=1), written=outcomes.append)
            assert writer.flush(5.0)
    finally:
        writer.stop(timeout=2.0)
    assert outcomes == [None, {"activeCount": 1}]
    (stored,) = emulator.objects("ct")
    assert stored["status"] == {"activeCount": 1}
