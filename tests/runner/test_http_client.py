"""What the HTTP action's attempts share and what they do not, against real servers on 127.0.0.1:
the TLS context is built once, not per run (loading the CA bundle stalled the event loop when
many tasks were due together); verification stays on; nothing a server sets carries over."""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from reconciler.core.actions import HttpAction
from reconciler.core.runs import RunStatus
from reconciler.runner.base import Outcome
from reconciler.runner.http import HttpRun, HttpRunner
from tests.helpers import serve_http


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        body = json.dumps(dict(self.headers.items())).encode()
        self.send_response(200)
        if self.path == "/login":
            self.send_header("Set-Cookie", "session=run-one-secret; Path=/")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve_http(Handler) as url:
        yield url


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An HTTPS server whose certificate (self-signed) no bundle trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    folder: Path = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    with serve_http(Handler, context) as url:
        yield url


def attempt(url: str) -> HttpRun:
    return HttpRun(HttpAction.model_validate({"url": url, "timeoutSeconds": 10}), env={})


def run(url: str) -> Outcome:
    return asyncio.run(attempt(url).run())


def test_the_ca_bundle_is_loaded_once_not_per_run(
    server: str, tls_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str] = []
    for method in ("load_verify_locations", "load_default_certs"):
        real = getattr(ssl.SSLContext, method)

        def counted(self: ssl.SSLContext, *args: Any, _real: Any = real, **kw: Any) -> Any:
            loads.append(_real.__name__)
            return _real(self, *args, **kw)

        monkeypatch.setattr(ssl.SSLContext, method, counted)

    HttpRunner({})
    at_start = len(loads)
    assert at_start <= 1  # none if an earlier test of this process built it already

    async def burst() -> list[Outcome]:
        runs = [attempt(f"{server}/") for _ in range(30)] + [attempt(tls_server) for _ in range(5)]
        return await asyncio.gather(*(one.run() for one in runs))

    outcomes = asyncio.run(burst())
    assert [o.status for o in outcomes[:30]] == [RunStatus.SUCCEEDED] * 30
    assert [o.reason for o in outcomes[30:]] == ["RequestFailed"] * 5
    assert loads[at_start:] == []


def test_tls_verification_stays_on(tls_server: str) -> None:
    outcome = run(f"{tls_server}/")
    assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "RequestFailed")
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.message


def test_a_cookie_set_by_one_run_is_not_sent_by_the_next(server: str) -> None:
    async def both() -> tuple[Outcome, Outcome]:
        # In one event loop, one after the other: as the runner would make them.
        return await attempt(f"{server}/login").run(), await attempt(f"{server}/echo").run()

    first, second = asyncio.run(both())
    assert first.status is second.status is RunStatus.SUCCEEDED
    seen = {k.lower() for k in json.loads(second.output)}
    assert "cookie" not in seen
