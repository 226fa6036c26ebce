"""The page served under a path by a reverse proxy (``https://example.com/crontask/``, the proxy
taking ``/crontask`` off before it forwards): every link, form, asset and redirect of the page
begins with that path, which ``--external-url`` gives (``web.page_base``). They began with
``/``: behind such a proxy the page had no stylesheet and no script, its links and Run now led
to the proxy's other paths, and a sign-in ended there too; a notification's link (made from
``--external-url``) opened that page.

Real HTTP through a real proxy's rule (an ASGI app that forwards ``/crontask/...`` without the
prefix, and answers 404 to anything else), served by uvicorn; the links are followed as a
browser would (each against the page it is on), and in Debian's chromium (skipped where it or
Playwright is missing) the page loads nothing that fails."""

from __future__ import annotations

import functools
import html
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from reconciler import web
from reconciler.api.app import create_app
from reconciler.api.auth import AuthConfig, Role
from reconciler.sinks.metrics import Metrics
from tests.api.conftest import STATIC_TOKENS, write_auth
from tests.api.fakes import T0, FakeRuntime, record, view
from tests.helpers import free_port, start_crontask_run, wait_for
from tests.uvicorn_app import uvicorn_serving
from tests.web.chromium import PAST_A_REFRESH, chromium
from tests.web.test_web_refresh_focus import tick_until

PREFIX = "/crontask"
__all__ = ["chromium"]  # a fixture, used by name
_URL = re.compile(r'(?:href|src|action)="([^"]*)"')


def behind_a_proxy(app: Any) -> Any:
    """``app`` as a proxy serves it under :data:`PREFIX`: that path taken off, nothing else."""
    return behind_paths({PREFIX: app})


def behind_paths(apps: dict[str, Any]) -> Any:
    """One proxy that serves each app under its path, taken off before it forwards (the app
    of ``""``, if any, at the root: the rest); 404 for what none serves."""

    async def proxy(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        for prefix, app in sorted(apps.items(), reverse=True):  # "" last
            if scope["type"] == "http" and (
                not prefix or path == prefix or path.startswith(prefix + "/")
            ):
                inner = dict(scope, path=path[len(prefix) :] or "/", raw_path=None)
                await app(inner, receive, send)
                return
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"not behind the proxy"})

    return proxy


def runtime() -> FakeRuntime:
    rt = FakeRuntime([view("hello", schedule="*/5 * * * *"), view("backup", "ops", kind="git")])
    rt.store.claim(record("default/hello", T0))
    return rt


@pytest.fixture(params=["open", "auth"])
def proxied(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The page behind the proxy: the proxy's URL of it (``.../crontask``)."""
    auth = AuthConfig.load(write_auth(tmp_path)) if request.param == "auth" else None
    app = create_app(runtime(), auth=auth, metrics=Metrics())
    page = web.install(app, clock=lambda: T0, base=web.page_base(f"https://x.example{PREFIX}/"))
    with uvicorn_serving(behind_a_proxy(page)) as url:
        yield url + PREFIX


def client(proxied: str) -> httpx.Client:
    token = STATIC_TOKENS[Role.OPERATOR]
    with httpx.Client(headers={"Accept": "text/html"}) as anonymous:
        origin = proxied.removesuffix(PREFIX)
        signed = anonymous.post(
            f"{proxied}/login",
            data={"token": token, "next": "/"},
            headers={"Origin": origin},
        )
    jar = signed.cookies if signed.status_code == 303 else httpx.Cookies()
    return httpx.Client(headers={"Accept": "text/html"}, cookies=jar)


def test_web_page_base_is_the_path_of_external_url() -> None:
    assert web.page_base(None) == ""
    assert web.page_base("https://x.example") == ""
    assert web.page_base("https://x.example/") == ""
    assert web.page_base("https://x.example/crontask/") == "/crontask"
    assert web.page_base("https://x.example/a b/ops") == "/a%20b/ops"


@pytest.mark.parametrize("path", ["/", "/tasks/default/hello", "/sources", "/runs/RUN"])
def test_every_link_of_a_page_leads_through_the_proxy(proxied: str, path: str) -> None:
    path = path.replace("RUN", record("default/hello", T0).id)
    with client(proxied) as browser:
        page = browser.get(proxied + path)
        assert page.status_code == 200, page.text
        links = {html.unescape(found) for found in _URL.findall(page.text)}
        assert links
        for link in sorted(links):
            target = urljoin(str(page.url), link)
            assert target.startswith(proxied + "/"), (link, target)
            if "/logout" in target or target.endswith("/run"):
                continue  # forms posted: below
            answer = browser.get(target)
            assert answer.status_code == 200, (link, answer.status_code, answer.text[:200])


def test_redirects_stay_behind_the_proxy(proxied: str) -> None:
    with httpx.Client(headers={"Accept": "text/html"}) as anonymous:
        guarded = anonymous.get(f"{proxied}/tasks/default/hello")
        if guarded.status_code == 303:  # auth on: to the sign-in, and back after it
            assert guarded.headers["location"] == f"{PREFIX}/login?next=/tasks/default/hello"
            assert anonymous.get(urljoin(proxied, guarded.headers["location"])).status_code == 200
            signed = anonymous.post(
                f"{proxied}/login",
                data={"token": STATIC_TOKENS[Role.OPERATOR], "next": "/tasks/default/hello"},
                headers={"Origin": proxied.removesuffix(PREFIX)},
            )
            assert signed.status_code == 303, signed.text
            assert signed.headers["location"] == f"{PREFIX}/tasks/default/hello"
        else:
            login = anonymous.get(f"{proxied}/login?next=/sources")
            assert login.headers["location"] == f"{PREFIX}/sources"
    with client(proxied) as browser:
        page = browser.get(f"{proxied}/tasks/default/hello").text
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token is not None
        ran = browser.post(
            f"{proxied}/tasks/default/hello/run",
            data={"csrf": token.group(1)},
            headers={"Origin": proxied.removesuffix(PREFIX)},
        )
        assert ran.status_code == 303, ran.text
        assert ran.headers["location"].startswith(f"{PREFIX}/"), ran.headers["location"]
        out = browser.post(
            f"{proxied}/logout",
            data={"csrf": token.group(1)},
            headers={"Origin": proxied.removesuffix(PREFIX)},
        )
        assert out.status_code == 303
        assert out.headers["location"] in (f"{PREFIX}/login", f"{PREFIX}/")


def test_a_post_with_no_session_says_where_to_sign_in(proxied: str) -> None:
    """Run now pressed once the session has ended (a restart without sessionSecretFile, 12
    hours) is refused, naming the sign-in behind the proxy: it said ``/login``, the proxy's."""
    with httpx.Client(headers={"Accept": "text/html"}) as anonymous:
        if anonymous.get(f"{proxied}/login").status_code == 303:
            return  # no auth: no sign-in
        ran = anonymous.post(
            f"{proxied}/tasks/default/hello/run",
            data={"csrf": "x"},
            headers={"Origin": proxied.removesuffix(PREFIX)},
        )
    assert ran.status_code == 401, ran.text
    assert f"sign in at {PREFIX}/login" in ran.text
    assert f'href="{PREFIX}/login"' in ran.text


@pytest.mark.e2e
def test_in_a_browser_the_page_loads_whole_behind_it(proxied: str, chromium: Any) -> None:
    """Styled, refreshed by its script, its links followed; with auth, signed in through the
    proxy, and sent to the sign-in again by a refresh once the session is gone."""
    context = chromium.new_context()
    try:
        tab = context.new_page()
        tab.clock.install()
        tab.set_default_timeout(10_000)
        failed: list[str] = []
        tab.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else 0)
        tab.goto(f"{proxied}/tasks/default/hello")
        signing_in = "/login" in tab.url
        if signing_in:
            tab.fill('input[name="token"]', STATIC_TOKENS[Role.OPERATOR])
            tab.click("button.primary")
            tab.wait_for_url(f"{proxied}/tasks/default/hello")
        assert tab.evaluate("getComputedStyle(document.body).marginTop") == "0px"  # its CSS
        tick_until(tab, "refreshes", 0)
        tab.click("nav >> text=Sources")
        tab.wait_for_url(f"{proxied}/sources")
        assert failed == []
        if signing_in:
            context.clear_cookies()  # the session is gone: the next refresh is a 401
            tab.clock.run_for(PAST_A_REFRESH)
            tab.wait_for_url(f"{proxied}/login?next=/sources")
    finally:
        context.close()


@pytest.mark.e2e
def test_crontask_run_takes_the_path_from_external_url(tmp_path: Path) -> None:
    """The real ``crontask run``: ``--external-url`` with a path makes the page's links begin
    with it (and without a path, at ``/`` as before)."""
    for external, base in (
        ("http://proxy.example/crontask/", PREFIX),
        ("http://proxy.example", ""),
    ):
        folder = tmp_path / ("prefixed" if base else "root")
        folder.mkdir()
        port = free_port()
        options = ("--listen", f"127.0.0.1:{port}", "--external-url", external)
        proc, log = start_crontask_run(folder, *options)
        try:
            url = f"http://127.0.0.1:{port}/"
            page = wait_for("the page", functools.partial(_page, url), timeout=60)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        assets = [u for u in _URL.findall(page) if "/static/" in u]
        assert assets, log.read_text()
        assert all(html.unescape(u).startswith(f"{base}/static/") for u in assets), assets


def _page(url: str) -> str | None:
    try:
        answer = httpx.get(url, timeout=5)
    except httpx.TransportError:
        return None
    return answer.text if answer.status_code == 200 else None


@pytest.mark.e2e
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_docs_take_the_path_too(tmp_path: Path, page: str) -> None:
    """The API's docs pages loaded their scripts and the OpenAPI document from ``/docs/assets``
    and ``/openapi.json``: behind the proxy, from its other paths."""
    app = create_app(
        runtime(), auth=None, metrics=Metrics(), external_url=f"http://proxy.example{PREFIX}/"
    )
    with uvicorn_serving(behind_a_proxy(app)) as url:
        served = httpx.get(f"{url}{PREFIX}{page}", timeout=10)
        assert served.status_code == 200
        loaded = [
            html.unescape(u)
            for u in re.findall(r"(?:src|href|url)[=:] ?['\"]([^'\"]+)", served.text)
        ]
        assert loaded, served.text
        assert all(u.startswith(f"{PREFIX}/") for u in loaded if u.startswith("/")), loaded
        for u in loaded:
            if u.startswith("/"):
                assert httpx.get(f"{url}{u}", timeout=10).status_code == 200, u
