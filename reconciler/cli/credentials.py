"""Whose credentials the client commands (:mod:`~reconciler.cli.client`) send, and where.

``$CRONTASK_TOKEN`` is sent as a bearer token. A loopback server (:func:`is_loopback`: however
this machine is spelled, ``127.1`` and ``127.0.0.1.`` too, but not ``localhost.``, which DNS
resolves) is asked directly, never through a proxy the environment names, so that the token
stays on the machine.
A user name in the server's URL and the token together are warned of (httpx sends the URL's
Basic credentials, and the token is not: a usage error would break what worked); a credential
sent over plain ``http://`` to another machine is warned of (once a process): it works (a
private network), but anyone on the way can read it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import sys
from typing import Final
from urllib.parse import urlsplit

from reconciler.cli.terminal import printable

TOKEN_ENV: Final = "CRONTASK_TOKEN"  # noqa: S105 - the name of a variable


def is_loopback(server: str) -> bool:
    """Whether ``server``'s host is this machine: ``localhost`` or a loopback address
    (``127.0.0.0/8``, ``::1``, ``::ffff:127.0.0.1``), the hosts Go's ``ProxyFromEnvironment``
    never proxies, and the other spellings a connection takes to this machine: an address's
    trailing dot (``127.0.0.1.``; not ``localhost.``, which DNS resolves), an IPv4 address
    as ``inet_aton`` reads it and so the system's resolver (``127.1``, ``0x7f.1``,
    ``2130706433``), and the unspecified address (``0.0.0.0``, ``::``). Those went through
    ``$HTTP_PROXY`` with the token. No name is resolved."""
    host = urlsplit(server).hostname or ""
    if host == "localhost":
        return True
    # An address's trailing dot is the same address; ``localhost.``, a name with the root's
    # dot, is looked up in DNS, not in /etc/hosts, and may be another machine: not this one.
    if host.endswith(".") and not host.endswith(".."):
        host = host[:-1]
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host)
    except ValueError:
        if (ipv4 := _inet_aton(host)) is None:
            return False
        address = ipv4
    mapped = getattr(address, "ipv4_mapped", None)
    return any(a is not None and (a.is_loopback or a.is_unspecified) for a in (address, mapped))


def _inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """``host`` as ``inet_aton`` reads an IPv4 address (one to four numbers, decimal, octal
    or hex: ``127.1``), as the resolver does before any lookup; ``None`` if it is none.
    ``inet_aton`` also takes anything after a space: only digits and dots are given it."""
    if not _AS_NUMBERS.fullmatch(host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


_AS_NUMBERS: Final = re.compile(r"[0-9a-fA-FxX.]+")


def check_credentials(server: str, token: str | None) -> None:
    """A user name in ``server``'s URL and ``token`` together are warned of: httpx sends the
    URL's Basic credentials, and the token is not (as before the warning). A credential
    sent over plain ``http://`` to another machine is warned of: it works (a private
    network), but anyone on the way can read it. Each warning is said once a process, however
    many requests it makes (``trigger`` asking again, ``plan --server``)."""
    parts = urlsplit(server)
    if token and (parts.username or parts.password):
        _warn(
            "crontask: warning: the server URL holds a user name (and password) and "
            f"${TOKEN_ENV} is set: the URL's are sent, not the token; give one of them"
        )
        token = None
    what = f"${TOKEN_ENV}" if token else "the URL's password" if parts.password else None
    if what and parts.scheme == "http" and not is_loopback(server):
        _warn(
            f"crontask: warning: {what} goes to {printable(parts.hostname or '')[:200]} over "
            "plain http://, which anyone on the way can read; give --server an https:// URL"
        )


_said: set[str] = set()  # the warnings this process said


def _warn(line: str) -> None:
    if line not in _said:
        _said.add(line)
        print(line, file=sys.stderr)
