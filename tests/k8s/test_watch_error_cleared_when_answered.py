"""After an outage (the API server's port refusing connections), the informer's error and its
count of failures go as soon as its watch is answered again, not when that watch ends (up to
timeoutSeconds later): ``/api/v1/sources`` does not show an error the source is past, and a
later failure's warning does not count the old outage's."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.model import API_GROUP
from reconciler.sources.kubernetes import list_function
from reconciler.sources.kubernetes_watch import Backoff, Informer
from tests.helpers import wait_for
from tests.k8s.emulator import Emulator
from tests.k8s.gate import gated
from tests.k8s.support import crontask


@pytest.mark.usefixtures("real_crd")
def test_the_outage_s_error_goes_once_the_watch_is_answered(
    emulator: Emulator, k8s_api_client: Any
) -> None:
    objects = client.CustomObjectsApi(k8s_api_client)
    objects.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, crontask("a"))
    with gated(emulator) as (gate, api):
        informer = Informer(
            list_function(api, "default"),
            on_change=lambda keys: None,
            backoff=Backoff(initial=0.02, cap=0.1),
        )
        try:
            assert informer.start(wait=10.0)
            gate.close()
            wait_for("three failed watches", lambda: informer.failures >= 3)
            assert (informer.last_error or "").startswith("MaxRetryError: ")

            gate.open()
            # Its event comes through a watch opened after the outage (no re-list: none is due).
            lists = informer.lists
            objects.create_namespaced_custom_object(
                API_GROUP, VERSION, "default", PLURAL, crontask("b")
            )
            wait_for("b", lambda: informer.snapshot(["default/b"]))
            assert informer.lists == lists
            # That watch is open (watch_seconds: 300): the source works, and says so.
            assert (informer.last_error, informer.failures) == (None, 0)
        finally:
            informer.stop()
