"""A private key given as ``jwt.publicKeyFile`` is refused, at start and when the file is read
again: PyJWT loads one, and an RSA private key cannot verify, so every caller's JWT-shaped
credential was a 500 with a traceback logged. And whatever a JWT's verification raises, the
answer is a 401."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from reconciler.api import auth as auth_module
from reconciler.api.app import create_app
from reconciler.api.auth import AuthConfig, AuthConfigError, JwtSettings
from reconciler.api.authfile import AuthFile
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.refusals import RefusalLog
from tests.api.conftest import AUDIENCE, ISSUER, TestClient, bearer, make_jwt
from tests.api.fakes import FakeRuntime

PRIVATE = "holds a private key: give its public key (openssl pkey -in KEY -pubout)"
UNUSABLE = "auth file changed but cannot be used; the settings read before stay in force"
# What anyone may send, no key needed: the reviewer's credential.
FORGED = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.AAAA"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def private_key(algorithm: str) -> PrivateKey:
    if algorithm.startswith("ES"):
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: PrivateKey, *, public: bool = False, password: bytes | None = None) -> bytes:
    if public:
        return key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    crypt: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, crypt)


def write_config(folder: Path, algorithm: str, key_pem: bytes) -> Path:
    (folder / "jwt.pem").write_bytes(key_pem)
    path = folder / "auth.yaml"
    path.write_text(
        f"jwt:\n  algorithm: {algorithm}\n  publicKeyFile: jwt.pem\n"
        f"  issuer: {ISSUER}\n  audience: {AUDIENCE}\n"
    )
    return path


@pytest.mark.parametrize(
    ("algorithm", "password"),
    [("RS256", None), ("PS256", None), ("ES256", None), ("RS256", b"pass")],
)
def test_a_private_key_is_refused_naming_the_file(
    tmp_path: Path, algorithm: str, password: bytes | None
) -> None:
    """RSA or EC, whatever the algorithm (PyJWT would take an EC key's public half), and an
    encrypted one too."""
    path = write_config(tmp_path, algorithm, pem(private_key(algorithm), password=password))
    with pytest.raises(AuthConfigError) as info:
        AuthConfig.load(path)
    assert str(info.value) == f"{path}: jwt.publicKeyFile: {tmp_path / 'jwt.pem'} {PRIVATE}"


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_its_public_key_is_taken(tmp_path: Path, algorithm: str) -> None:
    key = private_key(algorithm)
    config = AuthConfig.load(write_config(tmp_path, algorithm, pem(key, public=True)))
    principal = config.authenticate(f"Bearer {make_jwt('viewer', key=key, algorithm=algorithm)}")
    assert principal.name == "user-viewer"


def test_a_private_key_put_in_place_of_the_public_one_leaves_the_settings_before(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = private_key("RS256")
    auth_file = AuthFile.open(write_config(tmp_path, "RS256", pem(key, public=True)))
    before = auth_file.current()
    (tmp_path / "jwt.pem").write_bytes(pem(key))
    with caplog.at_level(logging.WARNING, logger="crontask.api"):
        auth_file.refresh()
    assert [r.getMessage() for r in caplog.records] == [UNUSABLE]
    assert PRIVATE in caplog.records[0].__dict__["fields"]["error"]
    assert auth_file.current() is before


def test_a_key_that_cannot_verify_is_a_401_not_a_500(tmp_path: Path) -> None:
    """Settings the loader no longer makes (a private RSA key, which has no ``verify``): a
    JWT's verification that fails with anything but PyJWT's own errors still refuses the
    credential, and nothing is raised to the server."""
    key = private_key("RS256")
    settings = JwtSettings.model_validate(
        {"algorithm": "RS256", "publicKeyFile": "k", "issuer": ISSUER, "audience": AUDIENCE}
    )
    config = AuthConfig((), settings, key, session_key=b"k" * 32)
    signed = make_jwt("viewer", key=key, algorithm="RS256")
    app = create_app(FakeRuntime(), auth=config, metrics=Metrics())
    with TestClient(app, raise_server_exceptions=False) as client:
        codes = [
            client.get("/api/v1/tasks", headers=bearer(t)).status_code for t in (FORGED, signed)
        ]
    assert codes == [401, 401]


@pytest.mark.e2e
def test_a_crontask_given_a_private_key_does_not_start(tmp_path: Path) -> None:
    path = write_config(tmp_path, "RS256", pem(private_key("RS256")))
    path.chmod(0o600)
    (tmp_path / "jwt.pem").chmod(0o600)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    command = [sys.executable, "-m", "reconciler", "run", str(tasks), "--allow-empty"]
    command += ["--auth-config", str(path), "--state-dir", str(tmp_path / "state")]
    command += ["--listen", "127.0.0.1:0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert f"{tmp_path / 'jwt.pem'} {PRIVATE}" in done.stderr


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
@pytest.mark.parametrize("form", ["PEM", "OpenSSH"])
def test_a_public_key_whose_text_names_a_private_key_is_taken(
    tmp_path: Path, algorithm: str, form: str
) -> None:
    """Only a PEM block of a private key, at a line's start, is one: a public key's comment
    (an OpenSSH key's, a line after the PEM block) may name it."""
    key = private_key(algorithm).public_key()
    named = b"-----BEGIN PRIVATE KEY----- kept in the vault"
    if form == "PEM":
        text = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        text += b"# its " + named + b"\n"
    else:
        text = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        text += b" ops@host " + named + b"\n"
    assert AuthConfig.load(write_config(tmp_path, algorithm, text)).jwt_key is not None


def test_an_unexpected_error_is_logged_once_per_type(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 401 hides no bug: its traceback is logged, once per type of error, not per request."""
    monkeypatch.setattr(auth_module, "_UNEXPECTED", RefusalLog(keep=32))
    key = private_key("RS256")
    settings = JwtSettings.model_validate(
        {"algorithm": "RS256", "publicKeyFile": "k", "issuer": ISSUER, "audience": AUDIENCE}
    )
    config = AuthConfig((), settings, key, session_key=b"k" * 32)
    app = create_app(FakeRuntime(), auth=config, metrics=Metrics())
    with (
        TestClient(app, raise_server_exceptions=False) as client,
        caplog.at_level(logging.ERROR, logger="crontask.api"),
    ):
        for _ in range(3):
            assert client.get("/api/v1/tasks", headers=bearer(FORGED)).status_code == 401
    shown = [r for r in caplog.records if r.getMessage().startswith("verifying a jwt failed")]
    assert len(shown) == 1, [r.getMessage() for r in caplog.records]
    assert shown[0].exc_info is not None
