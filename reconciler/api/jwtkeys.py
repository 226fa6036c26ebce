"""What ``auth.py`` tells of a JWT key: whether a PEM holds a private key, a public key's bytes."""

from __future__ import annotations

import re
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# A PEM block of a private key begins a line: "PRIVATE KEY-----" in a public key's comment,
# or the text around it, is none.
_PRIVATE_PEM: Final = re.compile(rb"^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----", re.MULTILINE)


def holds_private_key(pem: bytes) -> bool:
    """Whether ``pem`` holds a private key's block (an encrypted one too)."""
    return _PRIVATE_PEM.search(pem) is not None


def public_bytes(key: Any) -> bytes:
    """A public key as its DER, b"" for anything else (an HMAC secret, none)."""
    if not isinstance(key, RSAPublicKey | EllipticCurvePublicKey):
        return b""
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
