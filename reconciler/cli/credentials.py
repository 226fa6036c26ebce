"""Whose credentials the client commands (:mod:`~reconciler.cli.client`) send, and where.

``$CRONTASK_TOKEN`` is sent as a bearer token. A loopback server (:func:`is_loopback`) is asked
directly, never through a proxy the environment names, so that the token stays on the machine.
A user name in the server's URL and the token together are warned of (httpx sends the URL's
Basic credentials, and the token is not: a usage error would break what worked); a credential
sent over plain ``http://`` to another machine is warned of: it works (a private network), but
anyone on the way can read it.
"""

from __future__ import annotations

import ipaddress
import sys
from typing import Final
from urllib.parse import urlsplit

from reconciler.cli.terminal import printable

TOKEN_ENV: Final = "CRONTASK_TOKEN"  # noqa: S105 - the name of a variable


def is_loopback(server: str) -> bool:
    """Whether ``server``'s host is this machine: ``localhost`` or a loopback address
    (``127.0.0.0/8``, ``::1``, ``::ffff:127.0.0.1``), the hosts Go's ``ProxyFromEnvironment``
    never proxies. No name is resolved."""
    host = urlsplit(server).hostname or ""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def check_credentials(server: str, token: str | None) -> None:
    """A user name in ``server``'s URL and ``token`` together are warned of: httpx sends the
    URL's Basic credentials, and the token is not (as before the warning). A credential
    sent over plain ``http://`` to another machine is warned of, once: it works (a private
    network), but anyone on the way can read it."""
    parts = urlsplit(server)
    if token and (parts.username or parts.password):
        print(
            "crontask: warning: the server URL holds a user name (and password) and "
            f"${TOKEN_ENV} is set: the URL's are sent, not the token; give one of them",
            file=sys.stderr,
        )
        token = None
    what = f"${TOKEN_ENV}" if token else "the URL's password" if parts.password else None
    if what and parts.scheme == "http" and not is_loopback(server):
        print(
            f"crontask: warning: {what} goes to {printable(parts.hostname or '')[:200]} over "
            "plain http://, which anyone on the way can read; give --server an https:// URL",
            file=sys.stderr,
        )
