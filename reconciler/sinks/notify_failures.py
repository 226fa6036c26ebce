"""What a notification's failed attempt says: why TLS failed, or why no connection was made,
and how long a receiver asks to be left alone.

Pure reading of an exception chain and of a ``Retry-After`` header, with no state of a
delivery: split from ``notify_delivery``, whose senders log :func:`failure_fields` (the
``tls`` or ``cause`` field of a failure's line) and wait what :func:`retry_after` says after
a 429 or 503, and add the ``hint`` of :func:`status_hint` to a failure at a status. None ever
raises nor quotes the receiver's URL.
"""

from __future__ import annotations

import email.utils
import errno
import re
import socket
import ssl
from datetime import UTC, datetime
from typing import Final

# OpenSSL's codes whose message Python extends with the host or address it expected.
_NAME_MISMATCH: Final = frozenset({62, 64})  # X509_V_ERR_HOSTNAME_MISMATCH, _IP_ADDRESS_
_CAUSES_MOST: Final = 16  # links of a cause chain looked at (a chain may loop)
# The statuses that move a resource (a client that follows redirects would): 300 offers
# choices and 304 answers a conditional request, neither a new URL.
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
REDIRECT_HINT: Final = "redirects are not followed: update the receiver's URL"
NO_HTTP_STATUS_HINT: Final = (
    "not an HTTP status (none is above 599): the receiver's URL may lead to something that is"
    " no webhook"
)


def status_hint(status: object) -> str | None:
    """What the failure line of an answer with ``status`` says to do, if anything: a
    redirect is not followed (the client follows none; its ``Location`` is never said, as it
    may carry a token), and a status above 599 is none HTTP defines (httpx hands over none
    below 100: it refuses such an answer as a protocol error)."""
    if status in _REDIRECTS:
        return REDIRECT_HINT
    if isinstance(status, int) and status > 599:
        return NO_HTTP_STATUS_HINT
    return None


def tls_failure(err: BaseException) -> str | None:
    """Why TLS failed, if an ``ssl.SSLError`` is in ``err``'s cause chain: for a certificate
    that does not verify, ``certificate verify failed: <OpenSSL's reason>`` (a name mismatch
    without the name: it is the URL's host); for another, OpenSSL's reason code
    (``WRONG_VERSION_NUMBER``). None if none is."""
    seen: BaseException | None = err
    for _ in range(_CAUSES_MOST):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            message = str(seen.verify_message or "")
            if seen.verify_code in _NAME_MISMATCH:
                message = message.split(",", 1)[0]
            return f"certificate verify failed: {message}".rstrip(": ")
        if isinstance(seen, ssl.SSLError):
            return str(seen.reason or type(seen).__name__)
        seen = seen.__cause__ or seen.__context__
    return None


def failure_fields(err: BaseException) -> dict[str, str]:
    """The fields that say why an attempt that got no answer failed, beside its error's type
    (``error=ConnectError`` alone is the same for a receiver that is down, a host name that
    does not resolve and a certificate that does not verify): ``tls`` (:func:`tls_failure`),
    else ``cause`` (:func:`connect_failure`), else none."""
    why = tls_failure(err)
    if why is not None:
        return {"tls": why}
    cause = connect_failure(err)
    return {} if cause is None else {"cause": cause}


# What a name lookup's error code says (``socket.gaierror``'s errno, the resolver's EAI_*):
# a name that does not exist, or a resolver that did not answer this time.
_LOOKUP_CODES: Final = {
    getattr(socket, name): said
    for name, said in (
        ("EAI_NONAME", "name not resolved"),
        ("EAI_NODATA", "name not resolved"),  # no address of the family asked (glibc's)
        ("EAI_AGAIN", "name lookup failed temporarily"),
        ("EAI_FAIL", "name lookup failed"),
    )
    if hasattr(socket, name)
}
# What a connection's error code says (the OSError a connect raised).
_CONNECT_CODES: Final = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ETIMEDOUT: "connection timed out",
}


def connect_failure(err: BaseException) -> str | None:
    """Why no connection was made, from the first ``socket.gaierror`` (a name lookup) or
    ``OSError`` with a known errno in ``err``'s cause chain: its code, never its text (which
    may quote the host). None if neither is there."""
    seen: BaseException | None = err
    for _ in range(_CAUSES_MOST):
        if seen is None:
            return None
        if isinstance(seen, socket.gaierror):
            return _LOOKUP_CODES.get(seen.errno, "name lookup failed")
        if isinstance(seen, OSError) and seen.errno in _CONNECT_CODES:
            return _CONNECT_CODES[seen.errno]
        seen = seen.__cause__ or seen.__context__
    return None


_DELAY_SECONDS: Final = re.compile(r"[0-9]{1,10}")  # more digits: centuries, no real answer
_HTTP_DATE_MAX: Final = 64  # characters: "Sunday, 06-Nov-1994 08:49:37 GMT" is 32


def retry_after(value: str | None, now: datetime) -> float | None:
    """The seconds ``Retry-After`` asks to wait from ``now``: its delay-seconds, or the time
    until its HTTP-date (RFC 9110 §10.2.3; one in the past asks for none, 0). None when it
    asks nothing that can be read (absent, negative, a fraction, not a date, a date out of
    range): the caller keeps its own backoff. ``now`` is timezone-aware."""
    if value is None:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        return float(value)
    if len(value) > _HTTP_DATE_MAX:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:  # "-0000" or the asctime form: an HTTP-date is always GMT
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - now).total_seconds())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
