"""Whose credentials the client commands (:mod:`~reconciler.cli.client`) send, and where.

``$CRONTASK_TOKEN`` is sent as a bearer token. A loopback server (:func:`is_loopback`: however
this machine is spelled, ``127.1`` too, but not ``localhost.`` nor ``127.0.0.1.``, which DNS
resolves) is asked directly, never through a proxy the environment names, so that the token
stays on the machine.
A user name in the server's URL and the token together are warned of (httpx sends the URL's
Basic credentials, and the token is not: a usage error would break what worked); a credential
sent over plain ``http://`` to another machine is warned of (once a process): it works (a
private network), but anyone on the way can read it.
"""

from __future__ import annotations

import sys
from typing import Final
from urllib.parse import urlsplit

from reconciler.cli.terminal import printable
from reconciler.loopback import numeric_address

TOKEN_ENV: Final = "CRONTASK_TOKEN"  # noqa: S105 - the name of a variable


def is_loopback(server: str) -> bool:
    """Whether ``server``'s host is this machine: ``localhost`` or a loopback address
    (``127.0.0.0/8``, ``::1``, ``::ffff:127.0.0.1``), the hosts Go's ``ProxyFromEnvironment``
    never proxies, and the other spellings a connection takes to this machine: an IPv4
    address as the system's resolver reads it before any lookup (``127.1``, ``0x7f.1``,
    ``2130706433``), and the unspecified address (``0.0.0.0``, ``::``). Those went through
    ``$HTTP_PROXY`` with the token. No name is resolved, and a name is not this machine:
    ``localhost.`` and ``127.0.0.1.`` are looked up in DNS, not in /etc/hosts, and may be
    another machine. Read as the API reads ``--listen`` (``reconciler.loopback``)."""
    host = urlsplit(server).hostname or ""
    if host == "localhost":
        return True
    address = numeric_address(host)
    return address is not None and (address.is_loopback or address.is_unspecified)


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
