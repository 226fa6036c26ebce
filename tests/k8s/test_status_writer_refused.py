"""A status write the API server refuses with ``403`` (the ServiceAccount lacks a rule) is
logged naming the rule it lacks, ``crontasks/status: patch`` and the namespace, so the log says
what to add to the Role."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from reconciler.sinks.kubernetes import StatusWriter
from tests.k8s.emulator import Emulator
from tests.k8s.test_status_writer_reread_failed import create, setting

pytestmark = pytest.mark.usefixtures("real_crd")


def test_a_refused_status_write_names_the_rule_it_lacks(
    emulator: Emulator, k8s_api_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ref = create(emulator)
    writer = StatusWriter(k8s_api_client, workers=1, backoff=0.02, max_backoff=0.1)
    writer.start()
    try:
        emulator.inject_errors(status=403)
        with caplog.at_level(logging.WARNING, logger="crontask.sinks"):
            writer.submit(ref, setting(activeCount=1))
            assert writer.flush(5.0)
    finally:
        writer.stop(timeout=2.0)
    (record,) = [r for r in caplog.records if r.name == "crontask.sinks"]
    assert record.message == "status write refused"
    assert record.exc_info is None
    assert getattr(record, "fields", None) == {
        "task": "default/a",
        "status": 403,
        "reason": "Forbidden",
        "missing": "crontasks/status: patch in namespace default",
        "suppressed": 0,  # as a refused Event's line says
    }
    assert writer.failures == 1
    assert writer.writes == 0
