"""What an http run says of a response or of a failure (``runner.http``): the status line and a
redirect's ``Location`` as the task's URL is shown, an error's text with the first cause that
says something and the proxy that carried the request; a server's text clipped, ``secrets``
hidden."""

from __future__ import annotations

import ast
import os
import re
import socket
import urllib.parse

import httpcore
import httpx

from reconciler import httpclient
from reconciler.core.urls import REDACTED, redact_request_url
from reconciler.runner.http_secrets import Secrets

# A server chooses its reason phrase and what a protocol error quotes (up to h11's 16 KiB):
# messages keep this much of it.
_SERVER_TEXT = 200

# h11 quotes a line it refuses as the repr of its buffer ("illegal status line:
# bytearray(b'HTTP/1.1 2000 OK')"): said as the text it is, between plain quotes.
_BUFFER = re.compile(r"""bytearray\((b'(?:[^'\\]|\\.)*'|b"(?:[^"\\]|\\.)*")\)""")
# And a 101 answer to a request that proposed no upgrade in the names of its state machine.
_UNASKED_SWITCH = "Received server _SWITCH_UPGRADE event without a pending proposal"
# anyio's error when no address of a host took a connection; the reasons are in its cause.
_ALL_FAILED = "All connection attempts failed"
_CAUSES_MOST = 64  # errors looked at under it (a host has a few addresses, a chain few links)
_UNASKED_SWITCH_SAID = (
    "the server switched protocols (101 Switching Protocols) though the request asked for no "
    "upgrade (no Upgrade header)"
)
# h11's words for a head (or a chunk's size line) longer than httpcore lets it read: 100 KiB.
_TOO_LONG = "Receive buffer too long"
_TOO_LONG_SAID = (
    "a response head or line of more than "
    f"{httpcore.AsyncHTTP11Connection.MAX_INCOMPLETE_EVENT_SIZE // 1024} KiB, "
    "more than the client reads"
)


def summary(response: httpx.Response, url: str, secrets: Secrets) -> str:
    """The status line; a redirect's says where it pointed (it is not followed), without
    what the task's URL would not show (``_location``)."""
    line = f"HTTP {response.status_code} {clip(response.reason_phrase, secrets)}".rstrip()
    location = httpclient.redirect_location(response)
    if location is not None:
        line += f", Location: {_location(url, location, secrets)}"
    return line


def _location(url: str, location: str, secrets: Secrets) -> str:
    """A redirect's ``location`` as ``url`` is shown (``redact_request_url``: no userinfo, no
    path, no query values), resolved against ``url`` first (a relative one would otherwise
    be shown whole), printable and bounded."""
    try:
        target = urllib.parse.urljoin(url, location)
    except ValueError:  # an unreadable host ("http://[x"): nothing of it is shown
        return REDACTED
    shown = redact_request_url(target)
    scheme, _, rest = shown.partition(":")
    if not target.partition(":")[2].startswith("/") and rest.startswith(f"/{REDACTED}"):
        # No authority nor "/" (mailto:ops@example.com, urn:isbn:1): its hidden path is shown
        # without the slash redact_request_url puts before it, which it did not have.
        shown = f"{scheme}:{rest[1:]}"
    printable = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in shown)
    return clip(printable, secrets)


def describe(err: httpx.HTTPError, secrets: Secrets) -> str:
    cause = err.__cause__ or err.__context__
    text = clip(_in_words(str(err)) or type(err).__name__, secrets)
    if isinstance(err, httpx.ConnectError):
        return f"cannot connect ({_connect_reasons(cause) if text == _ALL_FAILED else text})"
    if cause is None:
        return f"{type(err).__name__}: {text}"
    # httpx re-raises h11's and the socket's errors with the same text: said once, not twice.
    said = clip(_in_words(_cause_text(cause)), secrets)
    return text if said == text else f"{text} ({said})"


def _connect_reasons(cause: BaseException | None) -> str:
    """Why no address took the connection, as the system says each reason (``Connection
    refused``), once each: from the errors under anyio's ``_ALL_FAILED`` (one, or a group of
    one per address), their codes, not their text (which quotes the address), but a name
    lookup's words. anyio's words when none has a code."""
    reasons: list[str] = []
    seen: set[int] = set()
    pending = [] if cause is None else [cause]
    while pending and len(seen) < _CAUSES_MOST:
        error = pending.pop(0)
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, BaseExceptionGroup):
            pending[:0] = error.exceptions
        elif isinstance(error, OSError) and error.errno:
            # A name lookup's code is the resolver's, not an errno: its words, which do not
            # quote the name (a refused connect's "Connect call failed (addr)" does).
            lookup = isinstance(error, socket.gaierror) and error.strerror
            reason = lookup or os.strerror(error.errno)
            reasons += [] if reason in reasons else [reason]
        elif (under := error.__cause__ or error.__context__) is not None:
            pending.insert(0, under)
    return "; ".join(reasons) or _ALL_FAILED


def _in_words(text: str) -> str:
    """An HTTP library's error ``text`` as a user reads it (``_BUFFER``, ``_UNASKED_SWITCH``,
    ``_TOO_LONG``)."""
    if text == _UNASKED_SWITCH:
        return _UNASKED_SWITCH_SAID
    if text == _TOO_LONG:
        return _TOO_LONG_SAID
    return _BUFFER.sub(_quoted, text)


def _quoted(match: re.Match[str]) -> str:
    try:
        data = ast.literal_eval(match.group(1))
    except (ValueError, SyntaxError):  # no repr h11 writes ("\xZZ"): left as it is
        return match.group(0)
    assert isinstance(data, bytes)  # the pattern takes b'...' and b"..." only
    text = data.decode("utf-8", errors="backslashreplace")
    return "'" + "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text) + "'"


def _cause_text(cause: BaseException) -> str:
    """What ``cause`` or the first error under it with some text says: a connection reset is
    an httpx ``ReadError`` of httpcore's of anyio's, all three empty, over the socket's
    ``ConnectionResetError`` (said as its ``strerror``: "Connection reset by peer")."""
    seen: set[int] = set()
    error: BaseException | None = cause
    while error is not None and id(error) not in seen:  # a chain may loop back
        seen.add(id(error))
        text = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        if text:
            return text
        error = error.__cause__ or error.__context__
    return ""


def through(failed: httpx.HTTPError | httpx.Request | None) -> str:
    """How the message of a failure (httpx's error, or the request, for asyncio's deadline)
    names the proxy that carried the request (the failure may be the proxy's, not the
    server's): ``host:port ($VARIABLE)``, never its credentials; nothing for a request that
    went direct, or none sent."""
    via = None if failed is None else httpclient.carried_by(failed)
    return "" if via is None else f" through proxy {via}"


def clip(text: str, secrets: Secrets) -> str:
    """A server's text, ``secrets`` hidden (before the cut, which could leave part of one)."""
    text = secrets.hide(text)
    return text if len(text) <= _SERVER_TEXT else f"{text[:_SERVER_TEXT]}..."
