"""A manual run this replica may not start now (its membership not renewed in time: the fence;
or crontask stopping) is answered ``503`` with ``Retry-After``, by the API and by the page's
Run now: the dispatcher records nothing for it (``Dispatcher._not_started``), so the ``202``
and ``Location`` it was answered with named a run that answered 404. The record is the one the
real dispatcher returns (``tests/controller/test_cluster_fence_on_fire.py`` shows a manual
run fenced gets it)."""

from __future__ import annotations

import re

from reconciler import web
from reconciler.api.app import create_app
from reconciler.controller.view import Triggered
from reconciler.core.runs import NOT_STARTED, RunRecord, RunStatus, Trigger, run_id
from reconciler.sinks.metrics import Metrics
from tests.api.conftest import TestClient
from tests.api.fakes import FakeRuntime, view
from tests.web.conftest import NOW


class Fenced(FakeRuntime):
    """A runtime whose replica is fenced: a manual run is not started, as the dispatcher says."""

    def trigger(self, key: str) -> Triggered:
        self.views[key]  # KeyError for an unknown task, as the protocol says
        at = self.clock
        record = RunRecord(  # as Dispatcher._not_started makes it: nothing is stored
            id=run_id(key, at),
            task=key,
            scheduled_at=at,
            trigger=Trigger.MANUAL,
            status=RunStatus.SKIPPED,
            finished_at=at,
            reason=NOT_STARTED,
            message="this replica may not start runs now: membership not renewed for 11s",
        )
        return self.fired(record)


def test_the_api_answers_503_and_names_no_run() -> None:
    runtime = Fenced([view("hello")])
    with TestClient(create_app(runtime, auth=None, metrics=Metrics())) as client:
        answer = client.post("/api/v1/tasks/default/hello/runs")
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "5"
    assert "location" not in answer.headers
    assert answer.json()["detail"] == (
        "run of default/hello not started: this replica may not start runs now: membership "
        "not renewed for 11s; retry later"
    )


def test_run_now_on_the_page_answers_the_503_page() -> None:
    runtime = Fenced([view("hello")])
    app = web.install(create_app(runtime, auth=None, metrics=Metrics()), clock=lambda: NOW)
    with TestClient(app) as page:
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.get("/tasks/default/hello").text)
        assert token is not None
        answer = page.post(
            "/tasks/default/hello/run",
            data={"csrf": token.group(1)},
            headers={"Accept": "text/html"},
            follow_redirects=False,
        )
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("text/html")
    assert "membership not renewed for 11s" in answer.text
