"""A token that passes the sign-in's length check fits the session cookie, or the sign-in says
it cannot be kept: never a cookie over the 4096 bytes a browser keeps of name=value (Chromium
drops it without a word, and the person is sent back to /login again and again).

The cookie seals the credential's own UTF-8: quotes, backslashes and non-ASCII characters
(which JSON escaped to up to six bytes each) cost no more than they are."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reconciler.api.auth import AuthConfig
from reconciler.web.session import COOKIE, CREDENTIAL_MAX, unseal
from tests.api.conftest import TestClient
from tests.web.conftest import PageFactory

# Each passes CREDENTIAL_MAX (3000 characters); sealed as JSON, the first two made cookies of
# 6 500 and 5 700 bytes.
FITS = {
    "accents": "é" * 800,
    "quotes": 'a"' * 1400,
    "backslashes": "b\\" * 1400,
    "longest-ascii": "c" * CREDENTIAL_MAX,
}
TOO_LONG = "é" * 2000  # 4000 bytes of UTF-8: no sealing keeps that under 4 KiB
SHORT = "short-viewer-token-" + "s" * 20


@pytest.fixture
def auth_file(tmp_path: Path) -> Path:
    tokens = {**FITS, "too-long": TOO_LONG, "short": SHORT}
    lines = "".join(
        f"  - {{name: {name}, sha256: {hashlib.sha256(token.encode()).hexdigest()}, "
        "role: viewer}\n"
        for name, token in tokens.items()
    )
    path = tmp_path / "auth.yaml"
    path.write_text(f"tokens:\n{lines}")
    return path


@pytest.fixture
def config(auth_file: Path) -> AuthConfig:
    """The page's auth, loaded once: a file of tokens only names no secret, so each load draws
    its own session key, and a test unseals with the page's."""
    return AuthConfig.load(auth_file)


@pytest.fixture
def guarded(make_page: PageFactory, config: AuthConfig) -> Iterator[TestClient]:
    with TestClient(make_page(config), raise_server_exceptions=True) as client:
        yield client


def cookie_line(set_cookie: str) -> str:
    """The ``name=value`` of a Set-Cookie header: what a browser's 4096 bytes count."""
    return set_cookie.split(";", 1)[0]


@pytest.mark.parametrize("name", sorted(FITS))
def test_a_long_token_that_passes_the_check_keeps_its_session(
    guarded: TestClient, config: AuthConfig, name: str
) -> None:
    token = FITS[name]
    response = guarded.post("/login", data={"token": token}, follow_redirects=False)
    assert response.status_code == 303, response.text
    line = cookie_line(response.headers["set-cookie"])
    assert line.startswith(f"{COOKIE}=")
    assert len(line.encode()) <= 4096, len(line.encode())
    page = guarded.get("/", follow_redirects=False)
    assert page.status_code == 200  # signed in, not sent back to /login
    assert name in page.text
    key = config.session_key
    assert unseal(key, guarded.cookies[COOKIE], time.time()) == token


def test_a_token_too_long_for_a_cookie_is_told_at_sign_in(guarded: TestClient) -> None:
    assert len(TOO_LONG) <= CREDENTIAL_MAX
    response = guarded.post("/login", data={"token": TOO_LONG}, follow_redirects=False)
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    assert "too long to keep in a browser session" in response.text
    assert guarded.get("/", follow_redirects=False).status_code == 303  # still signed out


def test_a_cookie_sealed_as_before_is_refused_and_its_holder_signs_in_again(
    guarded: TestClient, config: AuthConfig
) -> None:
    """Sessions sealed the JSON way (``v2``) end with the upgrade: the page asks for the
    token again, as for any session that ended."""
    key = config.session_key
    context = b"crontask page session v2"
    payload = json.dumps({"c": SHORT, "x": int(time.time()) + 600}, separators=(",", ":"))
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(hmac.digest(key, context, "sha256")).encrypt(nonce, payload.encode(), context)
    old = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
    guarded.cookies.set(COOKIE, old)
    response = guarded.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")
