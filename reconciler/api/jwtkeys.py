"""What ``auth.py`` tells of a JWT key: whether a PEM holds a private key, a public key's bytes,
whether it is too weak to trust."""

from __future__ import annotations

import re
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# A PEM block of a private key begins a line: "PRIVATE KEY-----" in a public key's comment,
# or the text around it, is none.
_PRIVATE_PEM: Final = re.compile(rb"^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----", re.MULTILINE)
# An RSA key of fewer bits is factored by whoever wants to sign an admin's JWT (512 bits: hours
# of rented CPU); PyJWT only warns of it, at every verification, on stderr. NIST SP 800-131A.
MIN_RSA_BITS: Final = 2048


def holds_private_key(pem: bytes) -> bool:
    """Whether ``pem`` holds a private key's block (an encrypted one too)."""
    return _PRIVATE_PEM.search(pem) is not None


def public_bytes(key: Any) -> bytes:
    """A public key as its DER, b"" for anything else (an HMAC secret, none)."""
    if not isinstance(key, RSAPublicKey | EllipticCurvePublicKey):
        return b""
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def weakness(algorithm: str, key: Any) -> str | None:
    """Why ``key`` (an HMAC secret's bytes, a public key) is too weak for ``algorithm``, or
    ``None``: an RSA key of fewer than :data:`MIN_RSA_BITS` bits, an HMAC secret shorter than
    its hash (RFC 7518 3.2: 32 bytes for HS256, 48 for HS384, 64 for HS512)."""
    if isinstance(key, bytes):
        needed = int(algorithm[2:]) // 8
        if len(key) < needed:
            return f"holds {len(key)} bytes; {algorithm} needs at least {needed}"
    elif isinstance(key, RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return f"holds an RSA key of {key.key_size} bits; {algorithm} needs at least {MIN_RSA_BITS}"
    return None
