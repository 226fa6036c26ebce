"""Two crontasks on one host name keep their sessions apart: each cookie has its own name.

A browser keeps cookies by host name, not by port: were both cookies ``crontask_session``,
signing in at ``127.0.0.1:B`` would replace the cookie of ``127.0.0.1:A``, and its person be
signed out there (each seals with a key of its own). The name carries a short hash of the
instance's origin (``--external-url``'s, else the address it listens on), the same after a
restart, so a session kept across restarts (``sessionSecretFile``) still opens. One httpx
cookie jar plays the browser: like one, it sends a host's cookies to every port of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.web.session import COOKIE, cookie_name
from tests.e2e.conftest import Crontask

pytestmark = pytest.mark.e2e

TOKEN = "the-admin-token-0123456789"  # noqa: S105
DIGEST = hashlib.sha256(TOKEN.encode()).hexdigest()
TOKENS = f"tokens:\n  - {{name: alice, sha256: '{DIGEST}', role: admin}}\n"


def _app(folder: Path) -> Crontask:
    """A crontask with an auth file of its own, whose sessions outlive a restart."""
    (folder / "tasks").mkdir(parents=True)
    (folder / "session-secret").write_bytes(folder.name.encode() * 44 + b"\n")
    (folder / "auth.yaml").write_text(TOKENS + "sessionSecretFile: session-secret\n")
    return Crontask(folder, folder / "tasks", ["--auth-config", str(folder / "auth.yaml")])


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Crontask, Crontask]]:
    apps: list[Crontask] = []
    try:
        for name in ("a", "b"):
            apps.append(_app(tmp_path / name).start())
        yield apps[0], apps[1]
    finally:
        for app in apps:
            app.stop()


def sign_in(jar: httpx.Client, app: Crontask) -> str:
    """Sign in at ``app`` with the jar: the ``Set-Cookie`` header it answers."""
    response = jar.post(f"{app.server}/login", data={"token": TOKEN})
    assert response.status_code == 303, response.text
    return response.headers["set-cookie"]


def overview(jar: httpx.Client, app: Crontask) -> int:
    """200 signed in, 303 (to /login) not."""
    return jar.get(f"{app.server}/").status_code


def test_signing_in_at_one_does_not_sign_out_of_the_other(
    two: tuple[Crontask, Crontask],
) -> None:
    a, b = two
    with httpx.Client(timeout=20) as jar:
        set_a = sign_in(jar, a)
        assert overview(jar, a) == 200
        assert overview(jar, b) == 303  # a's cookie reaches b (same host), and opens nothing
        set_b = sign_in(jar, b)
        assert overview(jar, b) == 200
        assert overview(jar, a) == 200, "signing in at b signed a's person out"
        assert len(jar.cookies) == 2, jar.cookies
    name_a, name_b = (s.split("=", 1)[0] for s in (set_a, set_b))
    assert name_a != name_b
    assert name_a.startswith(f"{COOKIE}_"), set_a
    for header in (set_a, set_b):  # the other attributes, as before
        attributes = [part.strip().lower() for part in header.split(";")]
        assert "httponly" in attributes, header
        assert "samesite=strict" in attributes, header
        assert "path=/" in attributes, header


def test_the_name_is_the_same_after_a_restart(tmp_path: Path) -> None:
    app = _app(tmp_path / "a").start()
    try:
        with httpx.Client(timeout=20) as jar:
            before = sign_in(jar, app).split("=", 1)[0]
            app.stop()
            app.start()
            assert overview(jar, app) == 200  # the cookie from before the restart opens
            assert sign_in(jar, app).split("=", 1)[0] == before
            assert len(jar.cookies) == 1, jar.cookies
    finally:
        app.stop()


def test_the_name_follows_the_origin() -> None:
    """Replicas behind one --external-url share a name (and, with a secret, sessions); two
    instances of one host are told apart by their ports."""
    external = cookie_name("https://crontask.example.com")
    assert external == cookie_name("https://crontask.example.com")
    assert external != cookie_name("https://crontask.example.com:8443")
    assert cookie_name("127.0.0.1:8080") != cookie_name("127.0.0.1:8081")
    assert external.startswith(f"{COOKIE}_")
    assert external.removeprefix(f"{COOKIE}_").isalnum()  # a token a cookie name may be
