"""Two crontasks on one host name keep their sessions apart: each cookie has its own name.

A browser keeps cookies by host name, not by port: were both cookies ``crontask_session``,
signing in at ``127.0.0.1:B`` would replace the cookie of ``127.0.0.1:A``, and its person be
signed out there (each seals with a key of its own). The name carries a short hash of the
origin the browser addresses (``--external-url``'s, else the request's ``Host``), the same
after a restart, so a session kept across restarts (``sessionSecretFile``) still opens. One
httpx cookie jar plays the browser: like one, it sends a host's cookies to every port of it.

Named after the address crontask listens on instead, two crontasks in containers that both
listen on ``0.0.0.0:8080`` and are reached through two forwarded ports (``kubectl
port-forward``, ``docker -p 8081:8080``) had one name, and signed each other's person out.
One crontask reached through two TCP forwarders shows the same: the forwarder passes bytes as
they are, so the browser's ``Host`` names the forwarder's port, as it does through those.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request

from reconciler.api.hosts import external_origin
from reconciler.web.session import COOKIE, cookie_name, request_origin
from tests.e2e.conftest import Crontask
from tests.helpers import pump
from tests.web.test_session import csrf_of

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


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Crontask, Crontask]]:
    """Two crontasks for the tests that only sign in and out, each with a cookie jar of its
    own: a session lives in its sealed cookie, not in the server (nothing one test does there
    is seen by another), and each start took 3 to 6 s on two busy cores."""
    folder = tmp_path_factory.mktemp("two")
    apps: list[Crontask] = []
    try:
        for name in ("a", "b"):
            apps.append(_app(folder / name).start())
        yield apps[0], apps[1]
    finally:
        for app in apps:
            app.stop()


def sign_in(jar: httpx.Client, app: Crontask | str) -> str:
    """Sign in at ``app`` (or at a URL that reaches it) with the jar: the ``Set-Cookie``
    header it answers."""
    server = app if isinstance(app, str) else app.server
    response = jar.post(f"{server}/login", data={"token": TOKEN})
    assert response.status_code == 303, response.text
    return response.headers["set-cookie"]


def overview(jar: httpx.Client, app: Crontask | str) -> int:
    """200 signed in, 303 (to /login) not."""
    return jar.get(f"{app if isinstance(app, str) else app.server}/").status_code


def sign_out(jar: httpx.Client, server: str) -> list[str]:
    """Sign out at ``server`` with the jar, as its page's Sign out form does (with the form's
    token): the names of the cookies the answer sets."""
    form = {"csrf": csrf_of(jar.get(f"{server}/").text)}
    response = jar.post(f"{server}/logout", data=form)
    assert response.status_code == 303, response.text
    return [header.split("=", 1)[0] for header in response.headers.get_list("set-cookie")]


@contextlib.contextmanager
def forwarded(port: int) -> Iterator[str]:
    """``http://127.0.0.1:F``: a TCP forwarder on a port of its own to 127.0.0.1:``port``, as
    ``kubectl port-forward`` or ``docker -p`` is: it passes the bytes as they are."""
    listener = socket.create_server(("127.0.0.1", 0))
    sockets: list[socket.socket] = [listener]
    threads: list[threading.Thread] = []

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # shut down: the test is over
                return
            upstream = socket.create_connection(("127.0.0.1", port), timeout=20)
            sockets.extend((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=pump, args=(source, sink), daemon=True)
                threads.append(thread)
                thread.start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        acceptor.join(20)
        for sock in sockets[1:]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes each recv()
        for thread in threads:
            thread.join(20)
        for sock in sockets:
            sock.close()
        assert not acceptor.is_alive()
        assert not any(thread.is_alive() for thread in threads)


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


def _origin(host: str | None, secure: bool = False) -> str:
    headers = [] if host is None else [(b"host", host.encode("latin-1"))]
    return request_origin(Request({"type": "http", "headers": headers}), secure)


def test_the_origin_is_the_host_as_the_host_check_reads_it() -> None:
    """Spellings of one origin name one cookie; as ``--external-url``'s would, too."""
    assert _origin("LOCALHOST.:8081") == "http://localhost:8081"
    assert _origin("[0:0::1]:8082") == "http://[::1]:8082"
    assert _origin("crontask.example:80") == _origin("crontask.example")
    assert _origin("crontask.example:443", secure=True) == "https://crontask.example"
    assert _origin("crontask.example:8443", secure=True) == external_origin(
        "https://Crontask.Example:8443/crontask"
    )
    assert _origin("127.0.0.1:8081") != _origin("127.0.0.1:8082")
    assert _origin(None) == "http://"  # no browser sends none: any label does


def test_one_crontask_through_two_forwarded_ports_keeps_two_sessions(
    two: tuple[Crontask, Crontask],
) -> None:
    """As two crontasks listening alike (``0.0.0.0:8080``) reached through two forwarded
    ports: signing in through the second, then out, leaves the first's session open."""
    app = two[0]
    with (
        forwarded(app.port) as first,
        forwarded(app.port) as second,
        httpx.Client(timeout=20) as jar,
    ):
        set_one = sign_in(jar, first)
        set_two = sign_in(jar, second)
        assert len(jar.cookies) == 2, jar.cookies  # the second did not replace the first
        names = [s.split("=", 1)[0] for s in (set_one, set_two)]
        assert names == [cookie_name(first), cookie_name(second)], names
        assert overview(jar, first) == overview(jar, second) == 200
        assert sign_out(jar, second) == [names[1]]
        assert overview(jar, second) == 303
        assert overview(jar, first) == 200, "signing out through one port signed the other out"


def test_with_an_external_url_every_port_names_it_alike(tmp_path: Path) -> None:
    """Replicas behind one ``--external-url`` share sessions: the name is its origin's, what
    ``Host`` a request has."""
    folder = tmp_path / "a"
    app = _app(folder)
    app.extra += ["--external-url", "http://crontask.example/"]
    app.start()
    try:
        with (
            forwarded(app.port) as one,
            forwarded(app.port) as two,
            httpx.Client(timeout=20) as jar,
        ):
            for server in (one, two):
                name = sign_in(jar, server).split("=", 1)[0]
                assert name == cookie_name("http://crontask.example"), name
            assert len(jar.cookies) == 1, jar.cookies
    finally:
        app.stop()


def test_sign_out_also_clears_the_cookie_crontask_0_9_named_the_old_way(
    two: tuple[Crontask, Crontask],
) -> None:
    """0.9.0 named it ``crontask_session`` alone: a browser still holds it, and signing out
    removes it with the session's own if this server sealed it; one it did not seal (another
    crontask 0.9.0 on this host name, signed in there) is left to its own."""
    app = two[0]
    with httpx.Client(timeout=20) as jar:
        name, sealed = sign_in(jar, app).split(";", 1)[0].split("=", 1)
        jar.cookies.set(COOKIE, sealed, domain="127.0.0.1", path="/")  # as 0.9.0 set it
        assert overview(jar, app) == 200
        assert sorted(sign_out(jar, app.server)) == sorted([COOKIE, name])
        assert len(jar.cookies) == 0, jar.cookies
        assert overview(jar, app) == 303
        jar.cookies.set(COOKIE, "another-crontasks", domain="127.0.0.1", path="/")
        sign_in(jar, app)
        assert sign_out(jar, app.server) == [name]  # not this server's: left alone
        assert jar.cookies.get(COOKIE) == "another-crontasks"
