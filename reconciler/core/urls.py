"""URLs as they may be shown: in status lines, logs, run messages and the API.

Pure string work (``urllib.parse`` only), so every layer that shows a URL uses this one rule.
"""

from __future__ import annotations

import urllib.parse

REDACTED = "***"


def redact_url(url: str) -> str:
    """``url`` without the secrets it may carry, for status lines, logs and run messages.

    http(s): the whole userinfo goes (a token is often passed as the user name). Other schemes
    (``ssh://git@host/...``) keep the user name, which is not a secret, and lose any password.
    Every query value becomes ``***`` and its name stays (``?token=***``), so the reader still
    sees which parameters were given; an item without ``=`` may itself be the secret and is
    replaced whole, and so is a fragment. scp-like addresses (``git@host:org/repo``) and local
    paths (no scheme) are returned unchanged.

    Never raises. A URL ``urlsplit`` refuses (a ``[`` or ``]`` in a password makes it look for
    an IPv6 host, and its error quotes what it found) loses its whole userinfo, whatever the
    scheme; if the rest still cannot be split, it is shown as ``***`` whole.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        url = _without_userinfo(url)
        try:
            parts = urllib.parse.urlsplit(url)
        except ValueError:
            return REDACTED
    if not parts.scheme:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if parts.scheme.lower() in ("http", "https"):
            netloc = hostport
        else:
            netloc = f"{userinfo.partition(':')[0]}@{hostport}"
    items = "&".join(_redact_item(item) for item in parts.query.split("&"))
    fragment = REDACTED if parts.fragment else ""
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=items, fragment=fragment))


def _without_userinfo(url: str) -> str:
    """``url`` with everything before the last ``@`` of its authority cut, found as
    ``urlsplit`` finds the authority: from ``//`` to the first ``/``, ``?`` or ``#``."""
    head, sep, rest = url.partition("//")
    if not sep:
        return url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    return f"{head}//{rest[:end].rpartition('@')[2]}{rest[end:]}"


def _redact_item(item: str) -> str:
    if not item:
        return item
    name, sep, _ = item.partition("=")
    return f"{name}={REDACTED}" if sep else REDACTED
