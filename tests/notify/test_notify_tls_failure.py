"""A receiver whose TLS certificate does not verify is not logged as a refused connection
(``error=ConnectError`` alone): the line says why (``tls``, from the ``ssl.SSLError`` in the
error's cause chain), never the URL or its host; it is retried as before. A real HTTPS
receiver with a self-signed certificate."""

from __future__ import annotations

import asyncio
import datetime
import logging
import ssl
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify_delivery import MAX_ATTEMPTS, Delivery, Message
from reconciler.sinks.notify_failures import tls_failure
from tests.helpers import serve_http
from tests.notify.test_notifier import config, counts


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def self_signed(tmp_path: Path) -> Iterator[str]:
    """An HTTPS receiver whose certificate (self-signed) no bundle trusts."""
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
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    with serve_http(Handler, context) as url:
        yield url


def test_a_certificate_that_does_not_verify_is_said(
    tmp_path: Path, self_signed: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="crontask.notify")
    metrics = Metrics()
    folder = tmp_path / "n"
    folder.mkdir()
    delivery = Delivery(
        config(folder, self_signed + "/hook", kind="generic"), metrics=metrics, backoff=0.01
    )

    async def main() -> None:
        stop = asyncio.Event()
        async with delivery.running(stop):
            delivery.enqueue(Message("hook", "failed", {"n": 1}))
            while counts(metrics)["failed"] < 1:
                await asyncio.sleep(0.01)
            stop.set()

    asyncio.run(main())
    tried = [r.__dict__["fields"] for r in caplog.records if "notification" in r.getMessage()]
    assert [f["attempt"] for f in tried] == list(range(1, MAX_ATTEMPTS + 1))  # retried
    for fields in tried:
        assert fields["error"] == "ConnectError"
        # OpenSSL's words: "self-signed certificate" (3.x), "self signed certificate" (1.1)
        assert (
            fields["tls"].replace("-", " ") == "certificate verify failed: self signed certificate"
        )
    assert "127.0.0.1" not in str(tried)


def chained(cause: ssl.SSLError) -> httpx.ConnectError:
    """An httpx error raised from ``cause``, as httpx raises one from a failed handshake."""
    try:
        try:
            raise cause
        except ssl.SSLError as err:
            raise httpx.ConnectError(str(err)) from err
    except httpx.ConnectError as err:
        return err


def failure(code: int, message: str) -> httpx.ConnectError:
    cause = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    cause.verify_code, cause.verify_message = code, message
    return chained(cause)


def test_a_name_mismatch_is_said_without_the_name() -> None:
    said = tls_failure(failure(62, "Hostname mismatch, certificate is not valid for 'x.corp'."))
    assert said == "certificate verify failed: Hostname mismatch"
    said = tls_failure(failure(64, "IP address mismatch, certificate is not valid for '10.1.2.3'."))
    assert said == "certificate verify failed: IP address mismatch"
    assert tls_failure(failure(10, "certificate has expired")) == (
        "certificate verify failed: certificate has expired"
    )


def test_other_errors_say_nothing_of_tls() -> None:
    assert tls_failure(httpx.ConnectError("[Errno 111] Connection refused")) is None
    handshake = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    handshake.reason = "WRONG_VERSION_NUMBER"
    assert tls_failure(chained(handshake)) == "WRONG_VERSION_NUMBER"
