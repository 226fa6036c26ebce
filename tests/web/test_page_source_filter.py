"""The status page refuses a source filter of an unknown kind, as it does an unknown state and
as the REST API does: ``/?source=bogus`` was a 200 "No task matches these filters", which
reads as "no task comes from there" rather than "there is no such kind of source"."""

from __future__ import annotations

from reconciler.core.desired import SourceKind
from tests.api.conftest import TestClient

HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}  # what a browser sends


def test_an_unknown_source_kind_is_refused(page: TestClient) -> None:
    answer = page.get("/?source=bogus", headers=HTML)
    assert answer.status_code == 422
    assert "source: &#39;bogus&#39; is not one of file, git, kubernetes, api" in answer.text
    assert page.get("/?source=bogus").headers["content-type"] == "application/problem+json"
    # The API refuses it too: the page and the API agree on what a source kind is.
    assert page.get("/api/v1/tasks?source=bogus").status_code == 422


def test_every_source_kind_is_a_filter(page: TestClient) -> None:
    for kind in SourceKind:
        assert page.get(f"/?source={kind}").status_code == 200, kind
    assert page.get("/?source=").status_code == 200  # empty, as a plain form sends it: any
