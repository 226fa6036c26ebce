"""A CronTask CRD without the ``/status`` subresource (made by hand, or an old one): every status
write is answered ``404``, not because the object is gone but because the API server serves no
such path. Each write is tried for one round of the writer's attempts (a ``/status`` not served
for a few seconds is retried: ``test_status_unserved_retried``), then dropped, with a warning
naming the fix (apply crontask's CRD), once, not in silence as for a deleted object. A run-now,
whose value no write can record, does not start, and says so. A ``404`` that names the object
(it was deleted) stays silent. Once the CRD has the subresource again, writes go through.

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
from reconciler.core.status import RUN_NOW_ANNOTATION
from reconciler.sinks.kubernetes import StatusWriter
from tests.helpers import wait_for
from tests.k8s.emulator import Emulator
from tests.k8s.test_fault_api import crontask, records, run_with_crontask, status_of
from tests.k8s.test_status_writer_reread_failed import create, setting

UNSERVED = (
    "status not written: the CronTask CRD is missing or has no status subresource, or the API"
    " server does not serve it yet"
)
REAL_CRD = Path(__file__).resolve().parents[2] / "deploy" / "crd.yaml"
# The warning, as said once for the first object's write (task ``default/a``).
UNSERVED_FOR_A = (
    UNSERVED,
    {
        "task": "default/a",
        "crd": f"{PLURAL}.{API_GROUP}",
        "fix": "crontask crd | kubectl apply -f -",
        "suppressed": 0,
    },
)


def crd(*, status_subresource: bool) -> dict[str, Any]:
    loaded = yaml.safe_load(REAL_CRD.read_text())
    assert isinstance(loaded, dict)
    made = copy.deepcopy(loaded)
    if not status_subresource:
        for version in made["spec"]["versions"]:
            version.pop("subresources", None)
    return made


def replace_crd(api: Any, *, status_subresource: bool) -> None:
    """crontask's CRD applied again over the one in place, with or without ``/status``."""
    made = crd(status_subresource=status_subresource)
    extensions: Any = client.ApiextensionsV1Api(api)  # untyped dicts
    name = f"{PLURAL}.{API_GROUP}"
    current = extensions.read_custom_resource_definition(name)
    made["metadata"]["resourceVersion"] = current.metadata.resource_version
    extensions.replace_custom_resource_definition(name, made)


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
            for n in range(3):
                writer.submit(a, setting(activeCount=n + 1), written=outcomes.append)
                writer.submit(b, setting(activeCount=n + 1), written=outcomes.append)
                assert writer.flush(5.0)  # each write's round ran out: dropped, not kept
    finally:
        writer.stop(timeout=2.0)
    assert outcomes == [None] * 6  # not written
    assert warnings(caplog) == [UNSERVED_FOR_A]
    assert writer.writes == 0


def test_a_deleted_objects_write_is_dropped_in_silence_and_another_objects_lands(
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


def test_once_the_crd_has_the_subresource_again_status_is_written(
    emulator: Emulator, k8s_api_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.create_crd(crd(status_subresource=False))
    ref = create(emulator, "a")
    writer = StatusWriter(k8s_api_client, workers=1, attempts=2, backoff=0.02, max_backoff=0.1)
    outcomes: list[Any] = []
    writer.start()
    try:
        with caplog.at_level(logging.WARNING, logger="crontask.sinks"):
            writer.submit(ref, setting(activeCount=1), written=outcomes.append)
            assert writer.flush(5.0)
            # The fix the warning names: the CRD applied again, with its subresource.
            replace_crd(k8s_api_client, status_subresource=True)
            writer.submit(ref, setting(activeCount=2), written=outcomes.append)
            assert writer.flush(5.0)
    finally:
        writer.stop(timeout=2.0)
    assert outcomes == [None, {"activeCount": 2}]
    assert [message for message, _ in warnings(caplog)] == [UNSERVED]
    (stored,) = emulator.objects("ct")
    assert stored["status"] == {"activeCount": 2}


@pytest.mark.slow  # the writer's default round of attempts: 6 to 11 s
def test_a_run_now_on_a_crd_without_the_status_subresource_does_not_start(
    tmp_path: Path,
    kubeconfig: Path,
    emulator: Emulator,
    k8s_api_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its value cannot be recorded, and a run-now starts only once it is (that record is what
    keeps a restart from running it again): it is said not started once its write's round ran
    out, and stays so once the CRD is fixed (a write retried until then would start it then,
    hours later, even if the annotation was withdrawn meanwhile)."""
    emulator.create_crd(crd(status_subresource=False))
    (tmp_path / "tasks").mkdir()
    body = crontask("rn", ["true"], "0 0 1 1 *")  # yearly: only a run-now would start it
    body["metadata"]["annotations"] = {RUN_NOW_ANNOTATION: "asked-1"}
    emulator.create(body)
    caplog.set_level(logging.INFO)

    def said(message: str) -> list[Any]:
        return [getattr(r, "fields", None) for r in list(caplog.records) if r.message == message]

    def scenario() -> None:
        (fields,) = wait_for(
            "the run-now said not started",
            lambda: said("run-now not started: its status write did not record it"),
            timeout=30,
        )
        assert fields == {"task": "default/rn", "value": "asked-1", "recorded": None}
        assert [message for message, _ in warnings(caplog)].count(UNSERVED) == 1
        # The fix, then a change whose status is written: the writer is past the old value.
        replace_crd(k8s_api_client, status_subresource=True)
        client.CustomObjectsApi(k8s_api_client).patch_namespaced_custom_object(
            API_GROUP,
            VERSION,
            "default",
            PLURAL,
            "rn",
            {"spec": {"schedule": "0 0 2 1 *"}},
            _content_type="application/merge-patch+json",
        )
        wait_for(
            "the new generation's status written",
            lambda: any(
                c.get("observedGeneration") == 2
                for c in (status_of(emulator, "rn").get("conditions") or [])
            ),
        )

    run_with_crontask(tmp_path, kubeconfig, scenario)
    assert said("run-now requested") == []
    assert records(tmp_path, "default/rn") == []
