"""What a request's headers say of its caller, at the edge of a real ``crontask run``.

A token is text, hashed as its UTF-8 bytes (README: ``printf %s "$TOKEN" | sha256sum``): one
with a non-ASCII character, sent as UTF-8, was refused by the API (Starlette reads a header as
Latin-1) and taken by ``/login``. Bytes that are no UTF-8 are a 401 as any unknown credential,
never a 500, the JWT-shaped ones too.

A refused credential's line names the connection's address as ``client``: uvicorn takes a
loopback caller's ``X-Forwarded-For`` for the client, and any local process sends one as it
likes (``admin-laptop level=info msg=ok`` was logged as who failed). What it claims is kept
apart, bounded, as ``forwarded_for``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.types import Scope

from reconciler.api.app import _authenticates, create_app
from reconciler.api.auth import AuthConfig
from reconciler.api.routing import ABORT, FORWARDED_KINDS, MAX_FORWARDED_CHARS, NOT_UTF8, _client
from reconciler.sinks.metrics import Metrics
from tests.api.conftest import AUDIENCE, HS_SECRET, ISSUER, make_jwt
from tests.api.fakes import FakeRuntime
from tests.e2e.conftest import Crontask
from tests.helpers import crontask_cli, wait_for

pytestmark = pytest.mark.e2e

UNICODE_TOKEN = "pässwörd-ünïcode-token-0123456789abcdef"  # noqa: S105
SPOOFED = "admin-laptop level=info msg=ok"
REPLACED = "\ufffd-replacement-token-0123456789"  # what a decoding with "replace" makes


def _auth_file(folder: Path) -> Path:
    """A viewer's non-ASCII token, hashed as its UTF-8 bytes, and an HMAC JWT issuer."""
    digest = hashlib.sha256(UNICODE_TOKEN.encode("utf-8")).hexdigest()
    replaced = hashlib.sha256(REPLACED.encode("utf-8")).hexdigest()
    (folder / "jwt-secret").write_bytes(HS_SECRET + b"\n")
    path = folder / "auth.yaml"
    path.write_text(
        f"tokens:\n  - {{name: uni, sha256: '{digest}', role: viewer}}\n"
        f"  - {{name: replaced, sha256: '{replaced}', role: viewer}}\n"
        f"jwt: {{algorithm: HS256, secretFile: jwt-secret, issuer: '{ISSUER}', "
        f"audience: {AUDIENCE}, roleClaim: role}}\n",
        encoding="utf-8",
    )
    return path


def _serve(folder: Path) -> Iterator[Crontask]:
    tasks = folder / "tasks"
    tasks.mkdir()
    served = Crontask(folder, tasks, ["--auth-config", str(_auth_file(folder))]).start()
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crontask]:
    """One server for the answers' statuses."""
    yield from _serve(tmp_path_factory.mktemp("edges"))


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Crontask]:
    """A server of its own, for a test of its log: no failure of its kind logged yet."""
    yield from _serve(tmp_path)


def _get(app: Crontask, authorization: bytes, path: str = "/api/v1/tasks", **headers: str) -> int:
    answer = httpx.get(
        f"{app.server}{path}",
        headers=[(b"Authorization", authorization)]
        + [(k.encode(), v.encode()) for k, v in headers.items()],
        timeout=20,
    )
    assert answer.status_code != 500, answer.text
    return answer.status_code


def test_a_non_ascii_token_sent_as_utf8_is_taken(app: Crontask) -> None:
    assert _get(app, b"Bearer " + UNICODE_TOKEN.encode("utf-8")) == 200
    assert _get(app, b"Bearer " + UNICODE_TOKEN.encode("latin-1")) == 401  # not its bytes


def test_the_page_reads_a_bearer_token_alike(app: Crontask) -> None:
    """The status page takes a bearer token as the API does (``web/session.py``)."""
    assert _get(app, b"Bearer " + UNICODE_TOKEN.encode("utf-8"), "/") == 200
    assert _get(app, b"Bearer " + UNICODE_TOKEN.encode("latin-1"), "/") != 200


@pytest.mark.parametrize(
    "token",
    [
        b"\xff\xfe-not-utf-8",
        b"p\xe4ssw\xf6rd",  # Latin-1 bytes: no UTF-8
        b"\xff." + make_jwt("admin").encode()[1:],  # shaped as a JWT, one byte no UTF-8
        b"a\xc3.b\xff.c",
    ],
)
def test_a_credential_that_is_no_utf8_is_a_401(app: Crontask, token: bytes) -> None:
    assert _get(app, b"Bearer " + token) == 401


def test_the_admission_edge_reads_the_header_alike(tmp_path: Path) -> None:
    """``app._authenticates`` (whether a plan may wait for its turn) reads the same header."""
    auth = AuthConfig.load(_auth_file(tmp_path))
    api = create_app(FakeRuntime([]), auth=auth, metrics=Metrics())

    def scope(token: bytes) -> Scope:
        return {"type": "http", "app": api, "headers": [(b"authorization", b"Bearer " + token)]}

    assert _authenticates(scope(UNICODE_TOKEN.encode("utf-8")))
    assert not _authenticates(scope(b"\xff." + make_jwt("admin").encode()[1:]))
    assert not _authenticates(scope(REPLACED.encode("utf-8").replace(b"\xef\xbf\xbd", b"\xff")))


def test_bytes_that_are_no_utf8_are_no_token_of_the_file(app: Crontask) -> None:
    """Read with replacements, ``\\xff`` and ``\\xfe`` would both be the file's token
    ``\\ufffd...``: many byte strings one credential. They are refused, at the API and the
    page alike, and the token itself is taken. (Through a real server: Starlette's test
    client sends a header's bytes again as UTF-8.)"""
    for where in ("/api/v1/tasks", "/"):
        assert _get(app, b"Bearer " + REPLACED.encode("utf-8"), where) == 200, where
        for byte in (b"\xff", b"\xfe"):
            token = REPLACED.encode("utf-8").replace(b"\xef\xbf\xbd", byte)
            assert _get(app, b"Bearer " + token, where) != 200, (where, byte)


def test_a_credential_that_is_no_utf8_is_logged_so(fresh: Crontask) -> None:
    assert _get(fresh, b"Bearer p\xe4ssw\xf6rd") == 401
    line = wait_for("the failure's line", lambda: _failures(fresh))[0]
    assert f'reason="{NOT_UTF8}"' in line, line


def test_each_client_behind_a_local_proxy_is_named(fresh: Crontask) -> None:
    """uvicorn trusts 127.0.0.1 and ::1 as proxies (README's nginx in front): each caller it
    forwards is a kind of its own, named at least once a minute, and the client logged is
    still the connection's address."""
    for caller in ("203.0.113.5", "203.0.113.6"):
        assert _get(fresh, b"Bearer wrong", **{"X-Forwarded-For": caller}) == 401
    lines = wait_for("two lines", lambda: _failures(fresh)[1:] and _failures(fresh))
    said = [line.split("forwarded_for=", 1)[1] for line in lines]
    assert said == ["203.0.113.5", "203.0.113.6"], lines
    assert all(" client=127.0.0.1 " in line for line in lines), lines


def test_invented_forwarded_clients_do_not_push_out_those_that_connect(fresh: Crontask) -> None:
    """Any local process forwards what it likes: 300 invented X-Forwarded-For values are 16
    kinds and one of "other forwarded clients", and a client that connects itself (from
    127.0.0.2) is still named (it was folded into "other clients" past 256 kinds)."""
    with httpx.Client(timeout=20) as client:
        for i in range(300):
            forwarded = {"X-Forwarded-For": f"10.9.{i // 250}.{i % 250}"}
            answer = client.get(
                f"{fresh.server}/api/v1/tasks",
                headers={"Authorization": "Bearer wrong", **forwarded},
            )
            assert answer.status_code == 401
    other = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(transport=other, timeout=20) as client:
        answer = client.get(
            f"{fresh.server}/api/v1/tasks", headers={"Authorization": "Bearer wrong"}
        )
        assert answer.status_code == 401

    def with_the_other() -> list[str] | None:
        lines = _failures(fresh)
        return lines if any(" client=127.0.0.2 " in line for line in lines) else None

    lines = wait_for("127.0.0.2's line", with_the_other)
    assert sum(" client=127.0.0.2 " in line for line in lines) == 1, lines
    assert sum("forwarded_for=" in line for line in lines) == FORWARDED_KINDS + 1, lines
    folded = [line for line in lines if 'forwarded_for="other forwarded clients"' in line]
    assert len(folded) == 1, lines  # the rest's line says it is theirs, not one of them
    assert not [line for line in lines if "other clients" in line], lines


def test_the_client_logged_over_ipv6_loopback_is_the_address_not_its_network() -> None:
    """A connection on ::1 through which uvicorn took a forwarded client: ``::1``, not the
    ``::/64`` its connections are counted by; the kind is counted by both."""
    scope: Scope = {
        "type": "http",
        "headers": [],
        "client": ("2001:db8::7", 0),  # uvicorn's, from X-Forwarded-For
        "extensions": {ABORT: {"peer": "::/64", "host": "::1"}},
    }
    assert _client(Request(scope)) == ("::1", ("::/64", "2001:db8::/64"))
    scope["client"] = ("::1", 5000)  # no proxy: the connection alone
    assert _client(Request(scope)) == ("::1", ("::/64",))


def _failures(app: Crontask) -> list[str]:
    return [line for line in app.log().splitlines() if "authentication failed" in line]


def test_the_client_logged_is_the_connections_not_what_it_claims(fresh: Crontask) -> None:
    app = fresh
    assert _get(app, b"Bearer " + "wrong-ünïcode".encode()) == 401
    line = wait_for("the first failure's line", lambda: _failures(app))[0]
    assert " client=127.0.0.1 " in line, line
    assert "forwarded_for" not in line, line  # none sent

    assert _get(app, b"Bearer not.a.jwt", **{"X-Forwarded-For": SPOOFED}) == 401
    line = wait_for("the spoofed failure's line", lambda: _failures(app)[1:])[0]
    assert " client=127.0.0.1 " in line, line
    assert f'forwarded_for="{SPOOFED}"' in line, line
    assert "level=info msg=ok" not in line.replace(f'"{SPOOFED}"', ""), line

    # The same claim again is the same kind (message, reason, connection, the client uvicorn
    # took from it): not a line of its own. A failure of another reason is logged after it.
    long_claim = "10.0.0.1, " + "x" * 5000
    assert _get(app, b"Bearer not.a.jwt2", **{"X-Forwarded-For": SPOOFED}) == 401
    assert _get(app, b"Basic d3Jvbmc=", **{"X-Forwarded-For": long_claim}) == 401
    later = wait_for("the third reason's line", lambda: _failures(app)[2:])
    assert len(later) == 1, later
    assert 'reason="not a bearer credential"' in later[0], later[0]
    assert " client=127.0.0.1 " in later[0], later[0]
    forwarded = later[0].split("forwarded_for=", 1)[1]
    assert forwarded.startswith('"10.0.0.1, xxx'), later[0]
    assert "chars, cut" in forwarded, later[0]
    assert len(forwarded) < MAX_FORWARDED_CHARS + 40, later[0]


def test_any_host_without_auth_is_a_usage_error(tmp_path: Path) -> None:
    """``--allow-host '*'`` without ``--auth-config``: an option without the one it needs, exit
    status 2 with the usage line, as a non-loopback ``--listen`` without auth is."""
    done = crontask_cli(
        "run", str(tmp_path), "--listen", "127.0.0.1:0", "--allow-host", "*", cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("usage: crontask run"), done.stderr
    assert "--allow-host '*' needs --auth-config" in done.stderr
