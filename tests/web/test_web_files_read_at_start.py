"""The page's templates and assets are read once, when crontask starts: an upgrade installed
over a running crontask (``pip install --upgrade``, then a restart) replaced them under the
process, which read each template again when its file changed (Jinja's ``auto_reload``) and
each asset at every request. The old code rendered the new templates, and every page was a
500 (``'base' is undefined``) until the restart; its pages loaded the new script.

Here the package's files are taken away after the start: every page and asset still answers,
as the process read them."""

from __future__ import annotations

from typing import Any

import pytest
from jinja2 import Environment, TemplateNotFound

from reconciler.web import pages
from tests.api.conftest import TestClient
from tests.api.fakes import T0, record


class _NoFiles:
    def files(self, package: str) -> Any:
        raise FileNotFoundError(package)


def _gone(environment: Environment, template: str) -> Any:
    raise TemplateNotFound(template)


@pytest.fixture
def files_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every template file changed on disk (what a process read is out of date) and none
    readable any more; no asset readable either."""
    for template in list(pages._templates.cache.values()) if pages._templates.cache else ():
        monkeypatch.setattr(template, "_uptodate", lambda: False)
    monkeypatch.setattr(pages._templates.loader, "get_source", _gone)
    monkeypatch.setattr(pages, "resources", _NoFiles())


@pytest.mark.usefixtures("files_gone")
@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/tasks/ops/flaky",
        "/sources",
        f"/runs/{record('ops/flaky', T0).id}",
        "/tasks/ops/none-such",  # missing.html
        "/?state=bogus",  # problem.html
        "/static/crontask.js",
        "/static/crontask.css",
        "/static/favicon.svg",
    ],
)
def test_pages_and_assets_answer_with_the_package_files_gone(page: TestClient, path: str) -> None:
    answer = page.get(path, headers={"Accept": "text/html"})
    assert answer.status_code in (200, 404, 422), answer.text
    assert answer.content
    if path.startswith("/static/"):
        assert answer.status_code == 200
    else:
        assert "</html>" in answer.text
