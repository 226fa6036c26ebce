"""What a notification's failed attempt says: why TLS failed, and how long a receiver asks to
be left alone.

Pure reading of an exception chain and of a ``Retry-After`` header, with no state of a
delivery: split from ``notify_delivery``, whose senders log :func:`tls_failure` (the ``tls``
field of a failure's line) and wait what :func:`retry_after` says after a 429 or 503.
Neither ever raises nor quotes the receiver's URL.
"""

from __future__ import annotations

import email.utils
import re
import ssl
from datetime import UTC, datetime
from typing import Final

# OpenSSL's codes whose message Python extends with the host or address it expected.
_NAME_MISMATCH: Final = frozenset({62, 64})  # X509_V_ERR_HOSTNAME_MISMATCH, _IP_ADDRESS_
_CAUSES_MOST: Final = 16  # links of a cause chain looked at (a chain may loop)


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
