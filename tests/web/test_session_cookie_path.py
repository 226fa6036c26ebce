"""Two crontasks served under two paths of one host (``https://ops.example/team-a/`` and
``/team-b/``, one reverse proxy) keep their sessions apart: each session cookie is scoped to the
path its page is served under.

The cookie is named after the origin of ``--external-url`` (``web.session.cookie_name``), and
both have one origin: with ``Path=/`` a sign-in at ``/team-b`` replaced the cookie of
``/team-a``, and its person was signed out there (each seals with a key of its own), and each
crontask was sent the other's cookie. One httpx cookie jar plays the browser, through a real
proxy's rule served by uvicorn.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler import web
from reconciler.api.app import create_app
from reconciler.api.auth import AuthConfig, Role
from reconciler.sinks.metrics import Metrics
from tests.api.conftest import STATIC_TOKENS, write_auth
from tests.api.fakes import T0
from tests.uvicorn_app import uvicorn_serving
from tests.web.test_web_path_prefix import behind_paths, runtime

PREFIXES = ("/team-a", "/team-b")


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[str]:
    apps = {}
    for prefix in PREFIXES:
        folder = tmp_path / prefix.strip("/")
        folder.mkdir()
        app = create_app(runtime(), auth=AuthConfig.load(write_auth(folder)), metrics=Metrics())
        external = f"https://ops.example{prefix}/"
        session = web.Session(instance="https://ops.example")  # as --external-url names it
        apps[prefix] = web.install(app, session, clock=lambda: T0, base=web.page_base(external))
    with uvicorn_serving(behind_paths(apps)) as url:
        yield url


def sign_in(browser: httpx.Client, url: str, prefix: str) -> httpx.Response:
    signed = browser.post(
        f"{url}{prefix}/login",
        data={"token": STATIC_TOKENS[Role.VIEWER], "next": "/"},
        headers={"Origin": url},
    )
    assert signed.status_code == 303, signed.text
    return signed


def test_each_cookie_is_scoped_to_its_path(proxy: str) -> None:
    with httpx.Client(headers={"Accept": "text/html"}) as browser:
        for prefix in PREFIXES:
            cookie = sign_in(browser, proxy, prefix).headers["set-cookie"]
            assert f"Path={prefix};" in cookie or cookie.endswith(f"Path={prefix}"), cookie
        for prefix in PREFIXES:  # neither sign-in signed the other's person out
            page = browser.get(f"{proxy}{prefix}/", follow_redirects=False)
            assert page.status_code == 200, (prefix, page.status_code, page.headers)


def test_signing_out_under_one_path_leaves_the_other(proxy: str) -> None:
    with httpx.Client(headers={"Accept": "text/html"}) as browser:
        for prefix in PREFIXES:
            sign_in(browser, proxy, prefix)
        page = browser.get(f"{proxy}/team-a/sources").text
        csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        out = browser.post(f"{proxy}/team-a/logout", data={"csrf": csrf}, headers={"Origin": proxy})
        assert out.status_code == 303
        assert "Path=/team-a" in out.headers["set-cookie"]
        assert browser.get(f"{proxy}/team-a/", follow_redirects=False).status_code == 303
        assert browser.get(f"{proxy}/team-b/", follow_redirects=False).status_code == 200


def test_a_cookie_kept_for_the_root_by_an_older_release_does_not_hide_the_new_one(
    proxy: str,
) -> None:
    """0.23.0 kept the cookie for ``/``; one the server no longer opens (sealed before a restart
    with a new key, or expired in its value) is still sent beside the new one, after it (a
    browser sends the longer path first), and it was the one read: every sign-in led back to the
    sign-in page until the old cookie expired."""
    with httpx.Client(headers={"Accept": "text/html"}) as browser:
        cookie = sign_in(browser, proxy, "/team-a").headers["set-cookie"]
        name = cookie.split("=", 1)[0]
        host = httpx.URL(proxy).host
        browser.cookies.set(name, "sealed-by-a-key-gone-since", domain=host, path="/")
        page = browser.get(f"{proxy}/team-a/", follow_redirects=False)
        assert page.status_code == 200, (page.status_code, page.headers)
        assert browser.get(f"{proxy}/team-b/", follow_redirects=False).status_code == 303


def test_signing_out_under_a_path_leaves_a_crontask_at_the_root_signed_in(tmp_path: Path) -> None:
    """A crontask at the root of the host (``https://ops.example/``) and one under ``/team-a``:
    the root one's cookie, kept for ``/``, is sent to ``/team-a`` too. Signing out there clears
    a cookie kept for ``/`` only if it is its own (one an older release kept), not the root
    crontask's, whose person stays signed in."""
    apps = {}
    for prefix in ("/team-a", ""):
        folder = tmp_path / (prefix.strip("/") or "root")
        folder.mkdir()
        # Two crontasks, two session keys (an auth file of their own each).
        auth = AuthConfig.load(write_auth(folder, metrics_require_auth=not prefix))
        app = create_app(runtime(), auth=auth, metrics=Metrics())
        session = web.Session(instance="https://ops.example")
        base = web.page_base(f"https://ops.example{prefix}/")
        apps[prefix] = web.install(app, session, clock=lambda: T0, base=base)

    with (
        uvicorn_serving(behind_paths(apps)) as url,
        httpx.Client(headers={"Accept": "text/html"}) as browser,
    ):
        sign_in(browser, url, "")
        sign_in(browser, url, "/team-a")
        assert browser.get(f"{url}/", follow_redirects=False).status_code == 200
        page = browser.get(f"{url}/team-a/sources").text
        csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        out = browser.post(f"{url}/team-a/logout", data={"csrf": csrf}, headers={"Origin": url})
        assert out.status_code == 303
        assert browser.get(f"{url}/team-a/", follow_redirects=False).status_code == 303
        assert browser.get(f"{url}/", follow_redirects=False).status_code == 200
