"""What ``auth.py`` tells of a JWT key, and of an error PyJWT raised that it did not expect."""

from __future__ import annotations

import logging
import re
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# A PEM block of a private key begins a line: "PRIVATE KEY-----" in a public key's comment,
# or the text around it, is none.
_PRIVATE_PEM: Final = re.compile(rb"^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----", re.MULTILINE)
MAX_KINDS: Final = 32  # the types OncePerType logs a traceback of, at most


def holds_private_key(pem: bytes) -> bool:
    """Whether ``pem`` holds a private key's block (an encrypted one too)."""
    return _PRIVATE_PEM.search(pem) is not None


def public_bytes(key: Any) -> bytes:
    """A public key as its DER, b"" for anything else (an HMAC secret, none)."""
    if not isinstance(key, RSAPublicKey | EllipticCurvePublicKey):
        return b""
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


class OncePerType:
    """Logs an error's traceback the first time its type is met, MAX_KINDS types at most: a
    bug behind a refusal is shown, and a caller repeating it writes no line per request."""

    def __init__(self, logger: logging.Logger, message: str) -> None:
        self.logger, self.message = logger, message
        self.seen: set[type[BaseException]] = set()

    def log(self, exc: BaseException) -> None:
        kind = type(exc)
        if kind in self.seen or len(self.seen) >= MAX_KINDS:
            return
        self.seen.add(kind)
        self.logger.error(
            f"{self.message}; this type of error is not logged again",
            exc_info=exc,
            extra={"fields": {"error": kind.__name__}},
        )
