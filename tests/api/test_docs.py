"""``/docs`` and ``/redoc`` work offline: every reference of either page is served by crontask
itself, and the pages forbid the browser any other origin.

Each page's HTML is fetched, every URL it references (``src``, ``href``, ``spec-url``, the
``url`` Swagger UI loads) must be on this origin and answer 200; every stylesheet's ``url()``
and ``@import`` must be ``data:`` or this origin; the bundles' source-map comments must be
relative. The Content-Security-Policy must name no other host.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import pytest

from reconciler.api import docs
from tests.api.conftest import TestClient

ORIGIN = "http://testserver"
HTML_REFERENCE = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']*)["']|url:\s*'([^']*)'""")
CSS_REFERENCE = re.compile(r"""url\(\s*["']?([^"')]*)|@import\s+["']([^"']+)""")
SOURCE_MAP = re.compile(r"sourceMappingURL=(\S+?)(?:\s|\*/|$)")
EXTERNAL = re.compile(r"(?:https?:)?//[^\s\"'<>]+", re.IGNORECASE)


def same_origin(base: str, reference: str) -> bool:
    absolute = urlsplit(urljoin(base, reference))
    return absolute.scheme in ("http", "data") and (
        absolute.scheme == "data" or absolute.netloc == urlsplit(ORIGIN).netloc
    )


@pytest.mark.parametrize(("page", "scripts"), [("/docs", 1), ("/redoc", 1)])
def test_every_reference_of_the_page_is_served_here(
    client: TestClient, page: str, scripts: int
) -> None:
    response = client.get(page)
    assert response.status_code == 200
    html = response.text
    assert EXTERNAL.findall(html) == []  # no host named anywhere, not even in a comment
    references = [a or b for a, b in HTML_REFERENCE.findall(html)]
    assert len([r for r in references if r.endswith(".js")]) == scripts
    assert "/openapi.json" in references
    for reference in references:
        assert same_origin(ORIGIN + page, reference), reference
        asset = client.get(urljoin(ORIGIN + page, reference))
        assert asset.status_code == 200, reference
        if reference.endswith(".css"):
            for a, b in CSS_REFERENCE.findall(asset.text):
                assert same_origin(ORIGIN + reference, a or b), a or b
        if reference.endswith((".css", ".js")):
            for target in SOURCE_MAP.findall(asset.text[-500:]):
                assert same_origin(ORIGIN + reference, target), target
            assert asset.headers["cache-control"].startswith("public")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_browser_may_load_nothing_from_another_origin(client: TestClient, page: str) -> None:
    policy = client.get(page).headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    allowed = {"'self'", "'none'", "'unsafe-inline'", "data:", "blob:"}
    for name, sources in directives.items():
        assert set(sources.split()) <= allowed, (name, sources)


def test_swagger_ui_asks_no_external_validator(client: TestClient) -> None:
    assert '"validatorUrl": null' in client.get("/docs").text


def test_only_the_bundled_files_are_served(client: TestClient) -> None:
    assert sorted(p.name for p in docs.assets_dir().iterdir() if p.name in docs.ASSETS) == sorted(
        docs.ASSETS
    )
    for name in ("../__init__.py", "..%2F__init__.py", "core.py", "x" * 300):
        response = client.get(f"/docs/assets/{name}")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
