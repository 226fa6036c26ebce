"""An ``https://`` server whose certificate does not verify is reported as a TLS failure, with
OpenSSL's reason, not as a server that cannot be reached: it is there, and asking whether
`crontask run` runs would send the user the wrong way. Real HTTPS servers on 127.0.0.1, with
certificates made here."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.cli.hostile import HostileServer, assert_one_line_error, cli


@dataclass(frozen=True)
class Tls:
    url: str  # https://127.0.0.1:PORT
    cert: Path  # the server's certificate (self-signed), to trust in $SSL_CERT_FILE


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A certificate for ``name`` (a DNS name or an IP address) signed by its own key, and
    that key: its certificate and key files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        alt = x509.DNSName(name)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return folder / "cert.pem", folder / "key.pem"


def serving(folder: Path, name: str) -> Iterator[Tls]:
    """The hostile test server behind TLS, with a certificate for ``name``."""
    cert, key = self_signed(folder, name)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = HostileServer()
    # Before it serves: its thread accepts on whatever socket it has then.
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Tls(server.url.replace("http://", "https://"), cert)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def for_this_host(tmp_path: Path) -> Iterator[Tls]:
    yield from serving(tmp_path, "127.0.0.1")


@pytest.fixture
def for_another_host(tmp_path: Path) -> Iterator[Tls]:
    yield from serving(tmp_path, "crontask.example")


@pytest.fixture(autouse=True)
def _no_trust_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "CRONTASK_TOKEN", "CRONTASK_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("argv", [("tasks",), ("trigger", "ops/a"), ("runs",)])
def test_a_self_signed_certificate_is_a_tls_failure(
    for_this_host: Tls, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    code = cli(*argv, "--server", for_this_host.url)
    _, err = capsys.readouterr()
    assert_one_line_error(
        code,
        err,
        f"crontask: TLS with {for_this_host.url} failed: certificate verify failed "
        "(self-signed certificate); a private CA's certificate can be given in $SSL_CERT_FILE",
    )
    assert "cannot reach" not in err


def test_a_certificate_for_another_host_is_a_tls_failure(
    for_another_host: Tls, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Trusted, so that what is left wrong is the name it was made for.
    monkeypatch.setenv("SSL_CERT_FILE", str(for_another_host.cert))
    code = cli("tasks", "--server", for_another_host.url)
    _, err = capsys.readouterr()
    assert_one_line_error(
        code,
        err,
        f"crontask: TLS with {for_another_host.url} failed: certificate verify failed "
        "(IP address mismatch, certificate is not valid for '127.0.0.1'.)",
    )
    assert "SSL_CERT_FILE" not in err  # trusting it would not help


def test_a_trusted_certificate_for_this_host_works(
    for_this_host: Tls, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The other side of the tests above: the same server, its certificate trusted, answers.
    monkeypatch.setenv("SSL_CERT_FILE", str(for_this_host.cert))
    assert cli("tasks", "--server", for_this_host.url) == 0
    assert capsys.readouterr().out == "no tasks\n"


def test_https_to_a_plain_http_server_is_a_tls_failure(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = hostile.url.replace("http://", "https://")
    code = cli("tasks", "--server", url)
    _, err = capsys.readouterr()
    assert_one_line_error(code, err, f"crontask: TLS with {url} failed: ")
    assert err.endswith(" (is it a plain http:// server?)\n"), err
    assert "_ssl.c" not in err  # OpenSSL's words, not where in Python they were raised


def test_nothing_listening_is_still_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli("tasks", "--server", "https://127.0.0.1:1")  # nothing listens on port 1
    _, err = capsys.readouterr()
    assert_one_line_error(code, err, "cannot reach crontask at https://127.0.0.1:1 ")
