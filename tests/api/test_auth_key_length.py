"""A JWT key too weak to trust is refused, at start and when the auth file is read again, as a
short HMAC secret always was: an RSA public key of fewer than 2 048 bits (one of 512 bits is
factored in hours, and then anyone signs an admin's JWT), an HMAC secret shorter than its hash
(RFC 7518 3.2: 48 bytes for HS384, 64 for HS512). Such a key was taken, and the first JWT
verified with it wrote PyJWT's ``InsecureKeyLengthWarning`` on stderr, outside the log."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from reconciler.api.auth import AuthConfig, AuthConfigError
from reconciler.api.authfile import AuthFile
from tests.api.conftest import AUDIENCE, ISSUER, make_jwt

UNUSABLE = "auth file changed but cannot be used; the settings read before stay in force"


def _rsa_auth(folder: Path, bits: int) -> tuple[Path, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (folder / "jwt.pub").write_bytes(pem)
    path = folder / "auth.yaml"
    path.write_text(
        f"jwt: {{algorithm: RS256, publicKeyFile: jwt.pub, issuer: '{ISSUER}', "
        f"audience: {AUDIENCE}}}\n"
    )
    return path, key


def _hmac_auth(folder: Path, algorithm: str, size: int) -> Path:
    (folder / "s").write_bytes(b"k" * size + b"\n")
    path = folder / "auth.yaml"
    path.write_text(f"jwt: {{algorithm: {algorithm}, secretFile: s, issuer: i, audience: a}}\n")
    return path


@pytest.mark.parametrize("bits", [1024, 2047])  # cryptography makes none under 1024
def test_an_rsa_key_under_2048_bits_is_refused_at_start(tmp_path: Path, bits: int) -> None:
    path, _ = _rsa_auth(tmp_path, bits)
    with pytest.raises(AuthConfigError) as info:
        AuthConfig.load(path)
    assert str(info.value) == (
        f"{path}: jwt.publicKeyFile: {tmp_path / 'jwt.pub'} holds an RSA key of {bits} bits; "
        "RS256 needs at least 2048"
    )


def test_an_rsa_key_of_2048_bits_verifies_without_a_warning(tmp_path: Path) -> None:
    path, key = _rsa_auth(tmp_path, 2048)
    config = AuthConfig.load(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PyJWT's InsecureKeyLengthWarning would be one
        token = make_jwt("admin", key=key, algorithm="RS256")
        assert config.authenticate(f"Bearer {token}").name == "user-admin"


@pytest.mark.parametrize(
    ("algorithm", "size", "needed"),
    [("HS384", 47, 48), ("HS512", 63, 64), ("HS512", 32, 64)],
)
def test_an_hmac_secret_shorter_than_its_hash_is_refused(
    tmp_path: Path, algorithm: str, size: int, needed: int
) -> None:
    path = _hmac_auth(tmp_path, algorithm, size)
    with pytest.raises(AuthConfigError) as info:
        AuthConfig.load(path)
    assert str(info.value).startswith(f"{path}: jwt.secretFile: {tmp_path / 's'} holds {size}")
    assert str(info.value).endswith(f"{algorithm} needs at least {needed}")


@pytest.mark.parametrize(("algorithm", "size"), [("HS256", 32), ("HS384", 48), ("HS512", 64)])
def test_an_hmac_secret_of_its_hash_size_is_taken(
    tmp_path: Path, algorithm: str, size: int
) -> None:
    config = AuthConfig.load(_hmac_auth(tmp_path, algorithm, size))
    token = make_jwt("viewer", key=b"k" * size, algorithm=algorithm, iss="i", aud="a")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert config.authenticate(f"Bearer {token}").name == "user-viewer"


def test_a_weak_key_read_again_leaves_the_key_before_in_force(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, key = _rsa_auth(tmp_path, 2048)
    auth_file = AuthFile.open(path)
    before = auth_file.current()
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (what is refused)
    (tmp_path / "jwt.pub").write_bytes(
        weak.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with caplog.at_level(logging.ERROR, logger="crontask.api"):
        auth_file.refresh()
    assert auth_file.current() is before
    assert any(
        r.getMessage() == UNUSABLE and "holds an RSA key of 1024 bits" in str(r.__dict__)
        for r in caplog.records
    )
    token = make_jwt("admin", key=key, algorithm="RS256")
    assert auth_file.current().authenticate(f"Bearer {token}").name == "user-admin"
