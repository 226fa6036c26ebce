"""The key that seals the page's session cookie is not derivable from the auth file alone.

An auth file of tokens lists only their SHA-256 and is often readable by every local user; a
browser sends the cookie to every port of its host, and the cookie holds the credential. Were
the key derived from the file's text, a local user with a web server on another port of
localhost would unseal an admin's token from one visit. So a file that names no secret
(no ``sessionSecretFile``, no HMAC JWT secret) seals with a key drawn by the process: another
process reading the same file, another replica, or the next start cannot open its cookies.
Where a secret is named, every process derives the same key, as before.

Each case runs two real ``crontask run`` processes over one auth file, as replicas behind one
``--external-url`` (so that both name the cookie alike), signs in at the first and shows the
cookie to the second; and a third process, as the other local user would,
loads the file and tries to unseal the cookie.
"""

from __future__ import annotations

import hashlib
import http.client
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from reconciler.web.session import cookie_name
from tests.e2e.conftest import Crontask

pytestmark = pytest.mark.e2e

TOKEN = "the-admin-token-0123456789"  # noqa: S105
DIGEST = hashlib.sha256(TOKEN.encode()).hexdigest()
EXTERNAL = "http://crontask.example"  # the origin both replicas are reached at
TOKENS = f"tokens:\n  - {{name: alice, sha256: '{DIGEST}', role: admin}}\n"
# What another local user runs: the auth file is all it reads.
UNSEAL = """
import sys, time
from reconciler.api.auth import AuthConfig
from reconciler.web.session import unseal
print(unseal(AuthConfig.load(sys.argv[1]).session_key, sys.argv[2], time.time()))
"""


def _public_key(folder: Path) -> str:
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (folder / "jwt.pub").write_bytes(pem)
    return "jwt: {algorithm: ES256, publicKeyFile: jwt.pub, issuer: i, audience: a}\n"


def _hmac_secret(folder: Path) -> str:
    (folder / "jwt-secret").write_bytes(b"j" * 40)
    return "jwt: {algorithm: HS256, secretFile: jwt-secret, issuer: i, audience: a}\n"


def _session_secret(folder: Path) -> str:
    (folder / "session-secret").write_bytes(b"s" * 44 + b"\n")
    return "sessionSecretFile: session-secret\n"


def _nothing(folder: Path) -> str:
    return ""


# What the auth file holds besides its token, and whether two processes share sessions.
CASES = {
    "tokens only": (_nothing, False),
    "tokens and a public JWT key": (_public_key, False),
    "tokens and an HMAC JWT secret": (_hmac_secret, True),
    "tokens and a session secret": (_session_secret, True),
}


def sign_in(app: Crontask) -> str:
    """The session cookie ``app`` sets for :data:`TOKEN`, as ``name=value``."""
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=20)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        conn.request("POST", "/login", urlencode({"token": TOKEN}), headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 303, response.status
        set_cookie = response.getheader("set-cookie") or ""
    finally:
        conn.close()
    name, _, value = set_cookie.split(";", 1)[0].partition("=")
    assert name == cookie_name(EXTERNAL), set_cookie
    assert value, set_cookie
    return f"{name}={value}"


def overview(app: Crontask, cookie: str) -> int:
    """The status of the overview page for a browser that holds ``cookie`` (``name=value``):
    200 signed in, 303 (to /login) not."""
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=20)
    try:
        conn.request("GET", "/", headers={"Cookie": cookie})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def unsealed_elsewhere(auth_file: Path, cookie: str) -> str:
    """What another process that reads only ``auth_file`` finds in ``cookie``."""
    done = subprocess.run(
        [sys.executable, "-c", UNSEAL, str(auth_file), cookie],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, bool]:
    add, shared = CASES[request.param]
    auth_file = tmp_path / "auth.yaml"
    auth_file.write_text(TOKENS + add(tmp_path))
    return auth_file, shared


@pytest.fixture
def two(tmp_path: Path, case: tuple[Path, bool]) -> Iterator[tuple[Crontask, Crontask]]:
    auth_file, _ = case
    apps: list[Crontask] = []
    try:
        for name in ("first", "second"):
            workdir = tmp_path / name
            (workdir / "tasks").mkdir(parents=True)
            options = ["--auth-config", str(auth_file), "--external-url", EXTERNAL]
            app = Crontask(workdir, workdir / "tasks", options)
            apps.append(app.start())
        yield apps[0], apps[1]
    finally:
        for app in apps:
            app.stop()


@pytest.mark.slow
def test_a_cookie_opens_in_another_process_only_with_a_secret(
    two: tuple[Crontask, Crontask], case: tuple[Path, bool]
) -> None:
    auth_file, shared = case
    first, second = two
    cookie = sign_in(first)
    assert overview(first, cookie) == 200  # signed in where the cookie was made
    assert overview(second, cookie) == (200 if shared else 303)
    sealed = cookie.partition("=")[2]
    assert unsealed_elsewhere(auth_file, sealed) == (TOKEN if shared else "None")


@pytest.mark.slow
def test_a_file_without_a_secret_says_its_sessions_are_of_this_process(
    two: tuple[Crontask, Crontask], case: tuple[Path, bool]
) -> None:
    _, shared = case
    first, _ = two
    said = "sessions last as long as this process" in first.log()
    assert said is not shared
