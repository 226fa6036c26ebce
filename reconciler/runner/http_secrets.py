"""What an http run hides (``***``) in what it keeps of a response: the parts of its request
that the task's readers below ``admin`` may not see, as a receiver that echoes the request
(an Express-style ``404 Cannot POST /path``, httpbin's ``/anything``, a proxy's error page)
may quote them.

Two kinds of part. Hidden wherever they appear: the URL's whole path (as written, as sent,
decoded) and the ``valueFrom`` header values (whole and their credential after a scheme such
as ``Bearer``; as JSON, HTML and percent-encoding write them; a ``Basic`` one also decoded,
``user:password`` and the password), and the ``Proxy-Authorization`` value that carries a
proxy's credentials (:func:`proxy_secrets`: whole, its credential, ``user:password``).
Hidden only as a whole word (not next to a letter or a digit): the userinfo (and its Basic
form), a proxy's password unless ordinary and its user name if it looks like a credential,
and a path segment or query value that looks like a credential (:func:`_looks_secret`) -
hiding every segment and value would blank out common words of an ordinary answer
(``tasks``, ``active``, ``true``) and break its JSON. Percent escapes are matched in both
cases (``%2F``, ``%2f``); parts shorter than ``_LEAST`` are left.

Bounded work: at most ``MAX_FORMS`` parts of ``MAX_CHARS`` in all are kept (the URL's and the
proxy's first, then those hidden wherever they appear, then the longest), each searched for with
one ``str.find`` at C speed, so hiding 64 KiB takes milliseconds on the event loop. A part
cut by the end of the text (a body's head, a run stopped in the middle of it) is hidden too.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import html
import json
import re
import urllib.parse
from collections.abc import Iterable, Sequence

import httpx

from reconciler.core.actions import HttpAction
from reconciler.core.urls import REDACTED

# Shorter parts are no secret worth the name, and hiding every "v1" would blank out text.
_LEAST = 4
# What hiding may cost: beyond these, parts that only appear as whole words, then the
# shortest, are left out (a task with many 32 KiB header values).
MAX_FORMS = 256
MAX_CHARS = 1 << 20
# A letter or digit on neither side, an escape before it counting as a boundary: a receiver
# that quotes the URL percent-encoded (``?next=%2Fhooks%2FSECRET``) or as JSON escapes
# (``\u002FSECRET``) puts a hex digit right before it.
_BEFORE = r"(?:(?<![^\W_])|(?<=%[0-9A-Fa-f]{2})|(?<=\\u[0-9A-Fa-f]{4}))"
_AFTER = r"(?![^\W_])"
_ESCAPE_BEFORE = re.compile(r"(?:%[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4})$")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
# A query value whose name holds one of these is a credential, however short: client_secret,
# pwd, passphrase, authorization, auth_code, X-Amz-Signature, api_key, access_token, ...
_SECRET_NAME_PARTS = (
    *("token", "key", "sig", "secret", "pass", "pwd", "auth", "code", "cred", "session"),
)
_ORDINARY = frozenset(("true", "false", "null"))


class Secrets:
    """The parts to hide: ``anywhere`` wherever they appear, ``words`` only as whole words."""

    def __init__(
        self, anywhere: Iterable[str], words: Iterable[str] = (), *, first: Iterable[str] = ()
    ) -> None:
        """``first``: parts of either kind kept ahead of all others (the URL's and the
        proxy's, few, which a task's many long ``valueFrom`` values must not crowd out)."""
        self.anywhere = {p for p in anywhere if len(p) >= _LEAST}
        self.words = {p for p in words if len(p) >= _LEAST} - self.anywhere
        self.first = set(first) & (self.anywhere | self.words)
        ranked = [
            *_longest_first(self.first & self.anywhere),
            *_longest_first(self.first & self.words),
            *_longest_first(self.anywhere - self.first),
            *_longest_first(self.words - self.first),
        ]
        kept: list[str] = []
        total = 0
        for part in ranked:
            if len(kept) == MAX_FORMS:
                break
            if total + len(part) > MAX_CHARS:
                continue  # a shorter one may still fit
            kept.append(part)
            total += len(part)
        self._parts = [
            (p, None if p in self.anywhere else re.compile(_BEFORE + re.escape(p) + _AFTER))
            for p in _longest_first(kept)
        ]

    def with_values(self, values: Iterable[str]) -> Secrets:
        """These and ``values``, hidden wherever they appear (``valueFrom`` values)."""
        return Secrets([*self.anywhere, *values], self.words, first=self.first)

    def hide(self, text: str) -> str:
        for part, word in self._parts:
            if part in text:
                text = text.replace(part, REDACTED) if word is None else word.sub(REDACTED, text)
        return self._cut_at_end(text)

    def _cut_at_end(self, text: str) -> str:
        """``text`` without the start of a part that its end cuts (``...POST /hooks/SEC``)."""
        for part, word in self._parts:
            start, head = max(0, len(text) - len(part) + 1), part[:_LEAST]
            at = text.find(head, start)
            while at >= 0:
                whole = (
                    word is None
                    or at == 0
                    or not text[at - 1].isalnum()
                    or _ESCAPE_BEFORE.search(text, max(0, at - 6), at) is not None
                )
                if whole and part.startswith(text[at:]):
                    return f"{text[:at]}{REDACTED}"
                at = text.find(head, at + 1)
        return text


def _longest_first(parts: Iterable[str]) -> list[str]:
    return sorted(parts, key=lambda p: (-len(p), p))


def url_secrets(url: str) -> tuple[set[str], set[str]]:
    """What a response may quote of ``url`` (as written and as the client sends it): the
    parts to hide wherever they appear (the whole path) and those to hide as whole words
    (the userinfo, credential-like segments and query values). The fragment is never sent."""
    anywhere: set[str] = set()
    words: set[str] = set()
    for written in _as_sent(url):
        try:
            parts = urllib.parse.urlsplit(written)
        except ValueError:
            continue
        if "@" in parts.netloc:
            user, _, password = parts.netloc.rpartition("@")[0].partition(":")
            plain = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
            words.update(_decoded(user) | _decoded(password))
            words.add(base64.b64encode(plain.encode()).decode())
        if parts.path not in ("", "/"):
            # As quoted back whole too: percent-encoded (a login page's ?next=%2Fhooks%2F...).
            path = urllib.parse.unquote(parts.path)
            anywhere |= _decoded(parts.path) | {urllib.parse.quote(path, safe="")}
            for segment in parts.path.split("/"):
                if _looks_secret(urllib.parse.unquote(segment)):
                    words |= _decoded(segment)
        for item in re.split("[&;]", parts.query):  # ";" too, as some servers split
            name, _, value = item.partition("=") if "=" in item else ("", "", item)
            if _looks_secret(urllib.parse.unquote_plus(value), urllib.parse.unquote_plus(name)):
                words |= _decoded(value, plus=True)
    return _escapes_both_ways(anywhere), _escapes_both_ways(words)


def _as_sent(url: str) -> set[str]:
    sent = {url}
    with contextlib.suppress(httpx.InvalidURL, ValueError):  # not sent at all: the run says so
        sent.add(str(httpx.URL(url)))
    return sent


def _decoded(piece: str, *, plus: bool = False) -> set[str]:
    """``piece`` as written and percent-decoded (a query's ``+`` as a space, and not)."""
    found = {piece, urllib.parse.unquote(piece)}
    if plus:
        found.add(urllib.parse.unquote_plus(piece))
    return {p for p in found if p}


def _escapes_both_ways(pieces: set[str]) -> set[str]:
    """``pieces`` and, for those with percent escapes, the same with them in lower and upper
    case (``%2F``, ``%2f``): a receiver may write either."""
    found = set(pieces)
    for piece in pieces:
        if "%" in piece:
            found.add(_ESCAPE.sub(lambda m: m.group().lower(), piece))
            found.add(_ESCAPE.sub(lambda m: m.group().upper(), piece))
    return found


def _looks_secret(value: str, name: str | None = None) -> bool:
    """Whether a path segment or query ``value`` looks like a credential: long, letters and
    digits mixed, or a query value whose ``name`` says so; ``true`` or ``1000`` never."""
    if _ordinary(value):
        return False
    if name is not None and _secret_name(name.lower()):
        return True
    mixed = any(c.isalpha() for c in value) and any(c.isdigit() for c in value)
    return len(value) >= 16 or (len(value) >= 10 and mixed)


def _ordinary(value: str) -> bool:
    """Whether ``value`` is a common word of any answer (``true``, ``1000``), never hidden
    alone: a credential's part that is one would blank out ordinary output and break JSON."""
    return len(value) < _LEAST or value.lower() in _ORDINARY or (value.isdigit() and len(value) < 8)


def _secret_name(name: str) -> bool:
    return any(part in name for part in _SECRET_NAME_PARTS)


def header_secrets(action: HttpAction, headers: Sequence[tuple[str, str]]) -> set[str]:
    """The ``valueFrom`` values of ``headers`` (the action's headers as read, one (name,
    value) for each of them, in their order), as a response may quote them."""
    found: set[str] = set()
    for header, (_, value) in zip(action.headers, headers, strict=True):
        if header.value_from is not None:
            found |= _value_forms(value)
    return _escapes_both_ways(found)


def proxy_secrets(proxies: Iterable[str]) -> tuple[set[str], set[str]]:
    """What a response may quote of the credentials in the URLs of ``proxies``: the parts to
    hide wherever they appear and those to hide as whole words. httpx sends them to an HTTP
    proxy as ``Proxy-Authorization: Basic <user:password in base64>``, with every request
    (with a plain ``http://`` one, which goes to the proxy whole), and a proxy's error page
    may quote that header, or a proxy pass it on to a receiver that echoes it. Its distinctive
    forms are hidden wherever they appear: the whole value, the base64 credential (without
    its ``=`` padding too, as some quote it) and ``user:password`` (decoded and as the URL
    writes it). The parts alone only as whole words, and only if no ordinary word of an
    answer: the password unless ``true``, ``1000`` or shorter than ``_LEAST``; the user name
    (``admin``, ``proxy``, ``1000``) only if it looks like a credential (:func:`_looks_secret`).
    A SOCKS proxy is given them in its handshake, never in an HTTP request: nothing to hide."""
    anywhere: set[str] = set()
    words: set[str] = set()
    for proxy in proxies:
        try:
            auth = httpx.Proxy(proxy).auth  # decoded, as sent
            parts = urllib.parse.urlsplit(proxy)
        except (httpx.InvalidURL, ValueError):  # proxy_routes keeps none of these
            continue
        if auth is None or parts.scheme.lower() not in ("http", "https"):
            continue
        user, password = auth
        credential = base64.b64encode(f"{user}:{password}".encode()).decode()
        written = parts.netloc.rpartition("@")[0]
        written_user, _, written_password = written.partition(":")
        if not password:  # an API key as the user name: it is the credential
            user, password, written_user, written_password = "", user, "", written_user
        for piece in (f"Basic {credential}", credential, credential.rstrip("=")):
            anywhere |= _written(piece)
        if user and password:  # "admin:" or ":123456" alone is no distinctive form
            anywhere |= _written(f"{user}:{password}") | _written(written)
        if not _ordinary(password):
            words |= _written(password) | _written(written_password)
        if _looks_secret(user):
            words |= _written(user) | _written(written_user)
    return _escapes_both_ways(anywhere), _escapes_both_ways(words)


def _value_forms(value: str) -> set[str]:
    """A header value as a response may quote it (as :func:`_written` has each piece)."""
    scheme, _, credential = value.partition(" ")
    # "Bearer <token>": a server may quote the token alone; a Basic one decoded.
    pieces = [value, credential.strip()]
    if scheme.lower() == "basic":
        pieces += _basic_decoded(credential.strip())
    return {form for piece in pieces for form in _written(piece)}


def _basic_decoded(credential: str) -> list[str]:
    """``user:password`` and the password of a Basic credential, or nothing."""
    try:
        plain = base64.b64decode(credential, validate=True).decode()
    except (binascii.Error, ValueError):
        return []
    return [plain, plain.partition(":")[2]] if ":" in plain else []


def _written(piece: str) -> set[str]:
    """``piece`` as JSON (``/`` escaped or not), HTML and percent-encoding write it."""
    quoted = json.dumps(piece)[1:-1]
    return {
        piece,
        quoted,
        quoted.replace("/", "\\/"),
        html.escape(piece),
        urllib.parse.quote(piece, safe=""),
    }
