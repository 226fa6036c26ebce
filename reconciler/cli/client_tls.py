"""What a TLS failure of the client commands says (:mod:`~reconciler.cli.client`), on one line: a
certificate that does not verify is said as such, with a hint when a bundle could fix it, not as
a server that cannot be reached (the server is there, and the fix is the certificate or
``$SSL_CERT_FILE``); a plain HTTP server's answer to TLS is named as one.
"""

from __future__ import annotations

import re
from typing import Final

from reconciler.cli.terminal import printable

# OpenSSL's X509_V_ERR_ codes for a certificate whose issuer is trusted by no bundle: self-signed,
# self-signed in the chain, the issuer's certificate not found, the leaf's issuer not found.
_UNKNOWN_ISSUER: Final = frozenset({18, 19, 20, 21})
_TRUST_HINT: Final = "; a private CA's certificate can be given in $SSL_CERT_FILE"


def tls_problem(exc: BaseException) -> str | None:
    """What went wrong with TLS, if an :class:`ssl.SSLError` is among the causes of ``exc``
    (httpx wraps it in its own errors), in words such as ``certificate verify failed
    (self-signed certificate)``; else ``None``."""
    import ssl  # here, not at the top, as httpx (which loads it anyway on a request)

    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:  # a cycle of causes ends too
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            why = printable(cause.verify_message or cause.reason or "")[:200]
            # An issuer no bundle holds is fixed by trusting it (httpx reads $SSL_CERT_FILE);
            # a name mismatch or an expiry is not.
            hint = _TRUST_HINT if cause.verify_code in _UNKNOWN_ISSUER else ""
            return f"certificate verify failed ({why or 'no reason given'}){hint}"
        if isinstance(cause, ssl.SSLError):
            words = ssl_words(cause)
            # What a plain HTTP server's answer to a TLS hello reads as.
            plain = cause.reason == "WRONG_VERSION_NUMBER"
            return words + (" (is it a plain http:// server?)" if plain else "")
        cause = cause.__cause__ or cause.__context__
    return None


def ssl_words(exc: OSError) -> str:
    """What an :class:`OSError` or :class:`ssl.SSLError` says, in words, on one line: of
    "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)" or "[Errno 2] No such
    file or directory", what is not in brackets."""
    words = re.sub(r"^\[[^]]*\]\s*|\s*\(_ssl\.c:\d+\)$", "", str(exc))
    return printable(words or getattr(exc, "reason", None) or type(exc).__name__)[:200]
