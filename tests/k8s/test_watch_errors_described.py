"""Why a list or watch failed, as the API server said it: the ``message`` of its ``Status``
body (an RBAC refusal names the user, verb, resource and namespace), bounded and printable; a
CronTask list answered ``404`` asks whether the CRD is installed; and each retry's warning says
which informer it is (the CronTasks', or the Jobs' of a namespace), so their lines are told
apart."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.sources.kubernetes import KubernetesSource
from reconciler.sources.kubernetes_jobs import JobWatch
from tests.helpers import wait_for
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.errors import ApiError

RBAC = (
    'crontasks.crontask.dev is forbidden: User "system:serviceaccount:crontask:crontask" '
    'cannot list resource "crontasks" in API group "crontask.dev" in the namespace "default"'
)


class Refusing(Emulator):
    """The emulator, answering every request with ``error`` while it is set."""

    error: ApiError | None = None

    def _take_error(self, method: str, path: str) -> ApiError | None:
        return self.error or super()._take_error(method, path)


@pytest.fixture
def refusing() -> Iterator[Refusing]:
    emulator = Refusing()
    with emulator:
        yield emulator
    assert not emulator.server_errors


def watch_failures(caplog: pytest.LogCaptureFixture) -> list[Any]:
    return [
        getattr(r, "fields", {})
        for r in caplog.records
        if r.message == "kubernetes watch failed; retrying"
    ]


def listing_error(emulator: Emulator, tmp_path: Any, caplog: pytest.LogCaptureFixture) -> str:
    """What the CronTask source says when its first list fails."""
    from kubernetes import config

    kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig")
    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    source = KubernetesSource(api, "default")
    try:
        with caplog.at_level(logging.WARNING, logger="crontask.sources"):
            source.start(wait=0.0)
            (error,) = wait_for("the list's error", source.errors)
            wait_for("a retry's warning", lambda: watch_failures(caplog))
    finally:
        source.stop()
        api.close()
    return str(error)


def test_a_crontask_list_answered_404_asks_whether_the_crd_is_installed(
    emulator: Emulator, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    error = listing_error(emulator, tmp_path, caplog)  # no CRD registered
    said = (
        "HTTP 404: Not Found: the server could not find the requested resource "
        "(is the CRD crontasks.crontask.dev installed? crontask crd | kubectl apply -f -)"
    )
    assert error == f"default: cannot list CronTasks: {said}"
    first = watch_failures(caplog)[0]
    assert first["error"] == said
    assert (first["informer"], first["resource"]) == ("kubernetes-watch", "crontasks.crontask.dev")


def test_a_refusal_says_what_the_api_server_said(
    refusing: Refusing, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    refusing.error = ApiError(403, RBAC)
    error = listing_error(refusing, tmp_path, caplog)
    assert error == f"default: cannot list CronTasks: HTTP 403: Forbidden: {RBAC}"


def test_a_message_is_bounded_and_printable(
    refusing: Refusing, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    refusing.error = ApiError(403, "denied\x1b[2J\r\nfake=line " + "x" * 10_000)
    error = listing_error(refusing, tmp_path, caplog).removeprefix(
        "default: cannot list CronTasks: "
    )
    assert error.startswith("HTTP 403: Forbidden: denied [2J fake=line xxx")  # ESC, CR, LF gone
    assert error.isprintable()
    assert len(error) < 400


def test_the_job_informers_warning_names_it(
    refusing: Refusing, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from kubernetes import config

    refusing.error = ApiError(403, 'jobs.batch is forbidden: User "x" cannot list resource "jobs"')
    kubeconfig = refusing.write_kubeconfig(tmp_path / "kubeconfig")
    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    jobs = JobWatch(api, ["default"])
    try:
        with caplog.at_level(logging.WARNING, logger="crontask.sources"):
            jobs._start_informer("default", 0.0)
            (first, *_) = wait_for("a retry's warning", lambda: watch_failures(caplog))
    finally:
        jobs.stop()
        api.close()
    assert first["informer"] == "job-watch-default"
    assert first["error"] == (
        'HTTP 403: Forbidden: jobs.batch is forbidden: User "x" cannot list resource "jobs"'
    )
