"""``AuthConfig.load`` (clear errors naming file and key), and ``check_listen``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from reconciler.api.auth import AuthConfig, AuthConfigError, Role, check_listen
from tests.api.conftest import STATIC_TOKENS, write_auth


def test_loads_the_documented_shape(tmp_path: Path) -> None:
    config = AuthConfig.load(write_auth(tmp_path, metrics_require_auth=True))
    assert [t.role for t in config.tokens] == list(Role)
    assert config.jwt is not None
    assert config.jwt.algorithm == "HS256"
    assert config.metrics_require_auth is True
    principal = config.authenticate(f"Bearer {STATIC_TOKENS[Role.OPERATOR]}")
    assert (principal.name, principal.role) == ("operator-bot", Role.OPERATOR)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tokens: []\nmetricsRequireAuth: false\n", "nobody could log in"),
        ("tokenz: []\n", "unknown key 'tokenz'"),
        (
            "tokens:\n  - {name: a, sha256: " + "0" * 64 + ", role: viewer, extra: 1}\n",
            "unknown key 'tokens.0.extra'",
        ),
        ("tokens:\n  - {name: a, sha256: abc, role: viewer}\n", "tokens.0.sha256"),
        ("tokens:\n  - {name: a, sha256: " + "0" * 64 + ", role: root}\n", "tokens.0.role"),
        (
            "jwt: {algorithm: none, secretFile: s, issuer: i, audience: a}\n",
            "jwt.algorithm",
        ),
        ("jwt: {algorithm: RS256, secretFile: s, issuer: i, audience: a}\n", "needs publicKeyFile"),
        ("jwt: {algorithm: HS256, secretFile: s, issuer: i}\n", "missing key 'jwt.audience'"),
        ("jwt: {algorithm: HS256, secretFile: missing, issuer: i, audience: a}\n", "cannot read"),
        ("- a\n", "expected a mapping"),
        ("tokens: [\n", "not valid YAML"),
    ],
)
def test_rejects_with_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "auth.yaml"
    path.write_text(text)
    with pytest.raises(AuthConfigError) as info:
        AuthConfig.load(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[" * 5000 + b"]" * 5000, "nested too deeply to be an auth file"),
        (b"tokens: []\n" + b"#" * (1 << 20), "larger than 1024 KiB: not read"),
        (b"tokens: [\xff]\n", "not UTF-8 (byte 9)"),
    ],
)
def test_a_hostile_file_is_one_error_not_a_traceback(
    tmp_path: Path, data: bytes, message: str
) -> None:
    path = tmp_path / "auth.yaml"
    path.write_bytes(data)
    with pytest.raises(AuthConfigError) as info:
        AuthConfig.load(path)
    assert str(info.value) == f"{path}: {message}"


def test_short_hmac_secret_is_refused(tmp_path: Path) -> None:
    (tmp_path / "s").write_text("short")
    path = tmp_path / "auth.yaml"
    path.write_text("jwt: {algorithm: HS256, secretFile: s, issuer: i, audience: a}\n")
    with pytest.raises(AuthConfigError, match="needs at least 32"):
        AuthConfig.load(path)


def test_check_listen(auth_config: AuthConfig) -> None:
    for host in ("127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.5"):
        check_listen(host, None, False)
    check_listen("0.0.0.0", auth_config, False)
    check_listen("0.0.0.0", None, True)
    for host in ("0.0.0.0", "::", "10.1.2.3", "example.com", ""):
        with pytest.raises(ValueError, match="without authentication"):
            check_listen(host, None, False)


def _public_key_only(folder: Path, es_key: ec.EllipticCurvePrivateKey, extra: str = "") -> Path:
    pem = es_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (folder / "jwt.pub").write_bytes(pem)
    path = folder / "auth.yaml"
    path.write_text(
        "jwt: {algorithm: ES256, publicKeyFile: jwt.pub, issuer: i, audience: a}\n" + extra
    )
    return path


def test_a_file_with_no_secret_seals_sessions_with_one_of_this_process(
    tmp_path: Path, es_key: ec.EllipticCurvePrivateKey
) -> None:
    """A public JWT key and no tokens: everything in the file is public, so a key derived from
    it would let anyone who sees a cookie open it. Each process draws its own."""
    path = _public_key_only(tmp_path, es_key)
    first, second = AuthConfig.load(path), AuthConfig.load(path)
    assert not first.sessions_shared
    assert first.session_key != second.session_key


def test_a_session_secret_file_makes_sessions_shared_and_secret(
    tmp_path: Path, es_key: ec.EllipticCurvePrivateKey
) -> None:
    (tmp_path / "session-secret").write_bytes(b"s" * 32 + b"\n")
    path = _public_key_only(tmp_path, es_key, "sessionSecretFile: session-secret\n")
    first, second = AuthConfig.load(path), AuthConfig.load(path)
    assert first.sessions_shared
    assert first.session_key == second.session_key  # every replica, every start
    (tmp_path / "session-secret").write_bytes(b"t" * 32)
    assert AuthConfig.load(path).session_key != first.session_key
    (tmp_path / "session-secret").write_bytes(b"short")
    with pytest.raises(AuthConfigError, match=r"sessionSecretFile: .* needs at least 32"):
        AuthConfig.load(path)


def test_a_secret_file_that_is_no_regular_file_is_refused_at_once(
    tmp_path: Path, es_key: ec.EllipticCurvePrivateKey
) -> None:
    """A FIFO in a secret's place would block start-up until a writer came."""
    os.mkfifo(tmp_path / "session-secret")
    path = _public_key_only(tmp_path, es_key, "sessionSecretFile: session-secret\n")
    with pytest.raises(AuthConfigError, match=r"sessionSecretFile: cannot read .*not a regular"):
        AuthConfig.load(path)
