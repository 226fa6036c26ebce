"""The namespace filter suggests every namespace a task is declared in, not only those of the
rows on the page: with more tasks than a page holds (``PAGE_SIZE``), the namespaces of the
later pages were not offered (a team's namespace sorted after the first 50 tasks never was)."""

from __future__ import annotations

import re

from reconciler import web
from reconciler.api.app import create_app
from reconciler.sinks.metrics import Metrics
from reconciler.web.views import PAGE_SIZE
from tests.api.conftest import TestClient
from tests.api.fakes import FakeRuntime, view
from tests.web.conftest import NOW


def suggested(page: str) -> list[str]:
    datalist = re.search(r'<datalist id="namespaces">(.*?)</datalist>', page, re.S)
    assert datalist is not None
    return re.findall(r'<option value="([^"]*)">', datalist.group(1))


def test_every_namespace_is_suggested_on_the_first_page() -> None:
    names = [f"team-{i:03d}" for i in range(PAGE_SIZE + 10)]
    runtime = FakeRuntime([view("job", namespace) for namespace in names])
    app = web.install(create_app(runtime, auth=None, metrics=Metrics()), clock=lambda: NOW)
    with TestClient(app) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.text.count('class="key"') == PAGE_SIZE  # one page of the tasks
        assert suggested(page.text) == names
        # A filter shows its own rows; the suggestions stay every namespace.
        filtered = client.get("/", params={"namespace": "team-059"})
        assert filtered.text.count('class="key"') == 1
        assert suggested(filtered.text) == names
