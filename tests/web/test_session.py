"""Signing in to the page: the cookie, roles as in the API, CSRF-safe posts, no open redirect."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.api.auth import JWT_LEEWAY_SECONDS, AuthConfig, Role
from reconciler.web.session import (
    COOKIE,
    SESSION_SECONDS,
    local_path,
    seal,
    session_seconds,
    unseal,
)
from tests.api.conftest import STATIC_TOKENS, TestClient, make_jwt, write_auth
from tests.api.fakes import FakeRuntime, view
from tests.e2e.conftest import Crontask
from tests.helpers import free_port, start_crontask_run, wait_for
from tests.web.conftest import PageFactory


@pytest.fixture
def guarded(make_page: PageFactory, tmp_path: Path) -> Iterator[TestClient]:
    app = make_page(AuthConfig.load(write_auth(tmp_path)))
    with TestClient(app, raise_server_exceptions=True) as client:
        yield client


def sign_in(client: TestClient, token: str, target: str = "/") -> str:
    response = client.post("/login", data={"token": token, "next": target}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return str(response.headers["location"])


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found is not None
    return found.group(1)


def test_a_person_who_is_not_signed_in_is_sent_to_sign_in(guarded: TestClient) -> None:
    response = guarded.get("/tasks/ops/flaky?status=failed", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/tasks/ops/flaky%3Fstatus%3Dfailed"
    assert guarded.get("/", headers={"X-Crontask-Refresh": "1"}).status_code == 401
    assert guarded.post("/tasks/ops/flaky/run").status_code == 401
    assert guarded.get("/login").status_code == 200
    assert guarded.get("/static/crontask.css").status_code == 200


def test_a_deep_link_of_any_length_leads_to_the_sign_in_page(guarded: TestClient) -> None:
    """An "older runs" link (a cursor) or a task with long names: the sign-in page takes what
    the guard sends it, and a target too long to keep gives the overview, not an error."""
    deep = f"/tasks/{'n' * 63}/{'t' * 63}?status=succeeded&cursor={'c' * 1000}"
    response = guarded.get(deep, follow_redirects=False)
    assert response.status_code == 303
    login = guarded.get(response.headers["location"])
    assert login.status_code == 200, login.text
    assert f'value="{deep.replace("&", "&amp;")}"' in login.text  # where signing in goes
    too_long = guarded.get(f"/sources?x={'y' * 3000}", follow_redirects=False)
    assert too_long.headers["location"] == "/login?next=/"
    assert guarded.get(too_long.headers["location"]).status_code == 200


def test_sign_in_sets_a_strict_http_only_cookie(guarded: TestClient) -> None:
    token = STATIC_TOKENS[Role.VIEWER]
    response = guarded.post(
        "/login", data={"token": token, "next": "/sources"}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/sources"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/" in cookie
    assert "Max-Age=43200" in cookie
    assert token not in cookie  # encoded, and never shown in the page
    page = guarded.get("/sources")
    assert page.status_code == 200
    assert "viewer-bot" in page.text


def test_a_bad_token_is_refused_without_a_cookie(
    guarded: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = guarded.post("/login", data={"token": "not-a-token-at-all"})
    assert response.status_code == 401
    assert "not valid here" in response.text
    assert "set-cookie" not in response.headers
    assert "not-a-token-at-all" not in caplog.text
    assert guarded.post("/login", data={"token": "x" * 5000}).status_code == 401


def test_a_viewer_sees_no_run_now_and_cannot_post_one(
    guarded: TestClient, runtime: FakeRuntime
) -> None:
    sign_in(guarded, STATIC_TOKENS[Role.VIEWER])
    html = guarded.get("/tasks/ops/flaky").text
    assert "Run now" not in html
    before = len(runtime.store.running())
    response = guarded.post("/tasks/ops/flaky/run", data={"csrf": csrf_of(html)})
    assert response.status_code == 403
    assert len(runtime.store.running()) == before


def test_an_operator_runs_now_with_the_form_token_only(
    guarded: TestClient, runtime: FakeRuntime
) -> None:
    sign_in(guarded, STATIC_TOKENS[Role.OPERATOR])
    html = guarded.get("/tasks/ops/flaky").text
    assert "Run now" in html
    assert guarded.post("/tasks/ops/flaky/run", data={"csrf": "0" * 64}).status_code == 403
    response = guarded.post(
        "/tasks/ops/flaky/run", data={"csrf": csrf_of(html)}, follow_redirects=False
    )
    assert response.status_code == 303
    assert runtime.store.get(response.headers["location"].removeprefix("/runs/")) is not None


def test_the_form_token_is_the_sessions_own(guarded: TestClient, make_page: PageFactory) -> None:
    sign_in(guarded, STATIC_TOKENS[Role.OPERATOR])
    operator_token = csrf_of(guarded.get("/").text)
    guarded.cookies.clear()
    sign_in(guarded, STATIC_TOKENS[Role.ADMIN])
    admin_token = csrf_of(guarded.get("/").text)
    assert operator_token != admin_token
    assert guarded.post("/tasks/ops/flaky/run", data={"csrf": operator_token}).status_code == 403


def test_the_form_token_cannot_be_made_from_the_auth_file(guarded: TestClient) -> None:
    token = STATIC_TOKENS[Role.OPERATOR]
    sign_in(guarded, token)
    listed = hashlib.sha256(token.encode()).digest()  # what auth.yaml holds for this token
    made = hmac.new(listed, b"crontask page csrf v1", hashlib.sha256).hexdigest()
    assert csrf_of(guarded.get("/").text) != made


def test_a_jwt_signs_in_until_it_expires(guarded: TestClient) -> None:
    token = make_jwt("operator", expires_in=600)
    response = guarded.post("/login", data={"token": token}, follow_redirects=False)
    assert response.status_code == 303
    max_age = int(re.search(r"Max-Age=(\d+)", response.headers["set-cookie"]).group(1))  # type: ignore[union-attr]
    # Until its exp, and the leeway for clock skew it is verified with.
    assert 590 + JWT_LEEWAY_SECONDS <= max_age <= 600 + JWT_LEEWAY_SECONDS
    assert "user-operator" in guarded.get("/").text
    assert 0 < session_seconds(make_jwt("viewer", expires_in=-5)) <= JWT_LEEWAY_SECONDS - 5
    assert session_seconds(make_jwt("viewer", expires_in=-JWT_LEEWAY_SECONDS - 5)) == 0


def test_an_expired_session_signs_out(guarded: TestClient, tmp_path: Path) -> None:
    key = AuthConfig.load(write_auth(tmp_path)).session_key
    guarded.cookies.set(COOKIE, seal(key, make_jwt("viewer", expires_in=-60), time.time() + 60))
    assert guarded.get("/", follow_redirects=False).status_code == 303


def test_the_cookie_is_sealed_and_its_session_ends_whatever_a_copy_says(
    guarded: TestClient, tmp_path: Path
) -> None:
    """A browser sends a cookie to every port of its host: another service there must see
    neither the token nor a session that outlives the one given."""
    token = STATIC_TOKENS[Role.OPERATOR]
    sign_in(guarded, token)
    value = guarded.cookies[COOKIE]
    opened = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    assert token.encode() not in opened
    assert hashlib.sha256(token.encode()).hexdigest().encode() not in opened
    assert guarded.get("/", follow_redirects=False).status_code == 200
    key = AuthConfig.load(write_auth(tmp_path)).session_key  # the same file: the same key
    assert unseal(key, value, time.time()) == token
    assert unseal(key, value, time.time() + SESSION_SECONDS + 1) is None  # its session is over
    # A session that ended, a cookie of another auth file, a change of one byte, the raw token
    # (as cookies were before): each is no session.
    for forged in (
        seal(key, token, time.time() - 1),
        seal(b"another auth file", token, time.time() + 60),
        value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1],
        base64.urlsafe_b64encode(token.encode()).decode().rstrip("="),
    ):
        guarded.cookies.clear()  # the forged one alone: each cookie sent is tried
        guarded.cookies.set(COOKIE, forged)
        assert guarded.get("/", follow_redirects=False).status_code == 303


def test_sign_in_from_another_site_is_refused(guarded: TestClient) -> None:
    response = guarded.post(
        "/login",
        data={"token": STATIC_TOKENS[Role.ADMIN]},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403


def test_sign_out_clears_the_cookie(guarded: TestClient) -> None:
    sign_in(guarded, STATIC_TOKENS[Role.VIEWER])
    form = {"csrf": csrf_of(guarded.get("/").text)}  # its form's token, as for Run now
    response = guarded.post("/logout", data=form, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert (
        "Max-Age=0" in response.headers["set-cookie"]
        or "expires=" in response.headers["set-cookie"].lower()
    )
    assert guarded.get("/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/tasks/ops/x", "/tasks/ops/x"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example", "/"),
        ("/a\nb", "/"),
        ("", "/"),
        ("/" + "x" * 3000, "/"),
    ],
)
def test_after_sign_in_only_paths_of_this_site(target: str, expected: str) -> None:
    assert local_path(target) == expected


def test_sign_in_is_not_needed_without_auth(page: TestClient) -> None:
    response = page.get("/login?next=/sources", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/sources"
    assert "open (loopback)" in page.get("/").text


@pytest.mark.e2e
def test_without_auth_on_another_address_the_page_says_anyone_may_use_it(
    tmp_path: Path,
) -> None:
    """``--listen 0.0.0.0 --insecure-no-auth``: whoever reaches the address may press Run
    now, and the header said "open (loopback)"."""
    port = free_port()
    proc, log = start_crontask_run(tmp_path, "--listen", f"0.0.0.0:{port}", "--insecure-no-auth")
    try:
        wait_for("the api listening", lambda: "api listening" in log.read_text(), 30)
        html = httpx.get(f"http://127.0.0.1:{port}/", timeout=20).text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert "open (no sign-in: --insecure-no-auth)" in html
    assert "open (loopback)" not in html


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("external", "secure"), [("https://ops.example/crontask", True), ("", False)]
)
def test_the_cookie_is_secure_when_people_reach_the_page_over_https(
    tmp_path: Path, external: str, secure: bool
) -> None:
    # A proxy terminating TLS on another machine forwards plain HTTP (and crontask trusts
    # X-Forwarded-Proto from 127.0.0.1 only): --external-url says the page is reached by HTTPS.
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    extra = ["--auth-config", str(write_auth(tmp_path))]
    extra += ["--external-url", external] if external else []
    app = Crontask(tmp_path, tasks, extra).start()
    try:
        response = httpx.post(
            f"{app.server}/login",
            data={"token": STATIC_TOKENS[Role.VIEWER], "next": "/"},
            timeout=20,
        )
    finally:
        app.stop()
    assert response.status_code == 303
    attributes = [part.strip() for part in response.headers["set-cookie"].split(";")]
    assert ("Secure" in attributes) is secure


@pytest.mark.parametrize(
    ("role", "exact"), [(Role.VIEWER, False), (Role.OPERATOR, False), (Role.ADMIN, True)]
)
def test_a_task_page_shows_url_secrets_only_to_those_who_may_write_tasks(
    guarded: TestClient, runtime: FakeRuntime, role: Role, exact: bool
) -> None:
    url = "https://bot:pa55word@hooks.example/services/T0/B0/SeCrEt?token=t0k"
    hook = view("hook", "ops", command=None, http={"url": url})
    runtime.views[hook.key] = hook
    sign_in(guarded, STATIC_TOKENS[role])
    html = guarded.get("/tasks/ops/hook").text
    assert "hooks.example" in html
    for secret in ("pa55word", "SeCrEt", "t0k"):
        assert (secret in html) is exact, secret


@pytest.mark.slow
def test_a_sign_in_through_a_proxy_that_rewrites_host_comes_from_the_external_url(
    tmp_path: Path,
) -> None:
    """nginx's ``proxy_pass http://127.0.0.1:8080`` sends its own ``Host``: the browser's
    ``Origin`` is the external URL's, which `crontask run` is told with ``--external-url``."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    extra = ["--auth-config", str(write_auth(tmp_path)), "--external-url", "https://ct.example/"]
    app = Crontask(tmp_path, tasks, extra).start()
    try:
        answers = {
            origin: httpx.post(
                f"{app.server}/login",
                data={"token": STATIC_TOKENS[Role.VIEWER], "next": "/"},
                headers={"Origin": origin, "Sec-Fetch-Site": "same-origin"},
                timeout=20,
            ).status_code
            for origin in ("https://ct.example", "https://evil.example", "http://ct.example")
        }
    finally:
        app.stop()
    assert answers == {
        "https://ct.example": 303,
        "https://evil.example": 403,
        "http://ct.example": 403,
    }
