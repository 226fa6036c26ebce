"""The sources page says which crontask version each replica runs; "unknown" for one of a
release that does not say."""

from __future__ import annotations

from fastapi.testclient import TestClient

from reconciler.controller.view import Members
from tests.api.fakes import FakeRuntime
from tests.api.test_members_version import member


def test_the_sources_page_shows_each_replicas_version(
    page: TestClient, runtime: FakeRuntime
) -> None:
    runtime.replicas = Members((member("a", "0.3.0"), member("b", None)))
    html = page.get("/sources").text
    rows = html.split("<tbody>")[-1]
    a_row, b_row = (r for r in rows.split("<tr>") if ":1:" in r)
    assert "<td>0.3.0</td>" in a_row
    assert "unknown" in b_row
