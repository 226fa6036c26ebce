"""URLs as they may be shown (in status lines, logs, run messages and the API), and the hosts
an http task's client can send to.

Pure string work (the standard library only), so every layer uses these same rules.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from urllib.parse import SplitResult

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


_IPV4_STYLE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")


def host_problem(parts: SplitResult) -> str | None:
    """What the HTTP action's client (httpx) refuses in a host when it sends, by its own rules
    (standard library only): a dotted-quad that is no IPv4 address, a bracketed host that is
    no IPv6 one, and, in a host it decodes (one that starts with ``xn--``), an ``xn--`` label
    that is no Punycode. IDNA's rules on the decoded characters are left to the run: they
    need the ``idna`` package, and its refusal is then one line, not a definition error."""
    host = parts.hostname
    assert host is not None  # checked by the caller
    if parts.netloc.rpartition("@")[2].startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"[{host}] is not an IPv6 address"
    elif _IPV4_STYLE.fullmatch(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"{host} is not an IPv4 address"
    elif host.startswith("xn--"):
        for label in host.split("."):
            if label.startswith("xn--") and not _a_label(label[4:]):
                return f"{label} is not a valid IDNA label (xn--, then Punycode)"
    return None


def _a_label(code: str) -> bool:
    # As the idna package checks one before its characters: there, decodes, and is the
    # encoding of what it decodes to (else two spellings would name one host).
    if not code or code.endswith("-"):
        return False
    try:
        return code.encode("ascii").decode("punycode").encode("punycode") == code.encode()
    except UnicodeError:
        return False
