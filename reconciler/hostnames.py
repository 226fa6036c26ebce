"""Host names as a ``Host`` header names them, and the ``--allow-host`` values that name them.

Apart from ``reconciler.api.hosts`` (the check itself, which loads the web framework) so that
the command line reads ``--allow-host`` without loading it.
"""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Final


def normal_name(name: str) -> str:
    """A host name as a ``Host`` header names it: lowercase, without the trailing dot, an IPv6
    address in its short form, an international name in the ASCII form browsers and proxies
    send (``xn--bcher-kva.example`` for ``bücher.example``: IDNA 2008 with UTS 46, as browsers
    map names; Python's own codec, IDNA 2003, maps ``faß.de`` to another domain, ``fass.de``)."""
    name = name.lower().rstrip(".")
    if ":" in name:
        with contextlib.suppress(ValueError):
            return str(ipaddress.IPv6Address(name))
    if name.isascii():
        return name
    import idna  # here: only such a name needs it, and the command line starts without it

    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError:  # no name IDNA can spell: no header will name it either
        return name


ANY_NAME: Final = "*"


def allowed_host(text: str) -> str:
    """An ``--allow-host`` value: :data:`ANY_NAME`, or a name or address as a ``Host`` header
    names it, without a port (:func:`normal_name`); ValueError saying what is wrong."""
    if text == ANY_NAME:
        return text
    name = text.strip()
    if name.startswith("[") and name.endswith("]"):  # [fd00::1], as a Host header writes it
        name = name[1:-1]
    if any(c.isspace() or c in "/@?#[]%*" for c in name) or len(name) > 253:
        raise ValueError(
            "expected a host name or address, such as crontask.example.com (no wildcard: "
            "repeat --allow-host for each name, or give '*' alone for any)"
        )
    if ":" in name:
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            raise ValueError("a name without a port (any port of it is answered)") from None
    normal = normal_name(name)
    if not normal or not normal.isascii():  # not a name IDNA can spell: no header names it
        raise ValueError("expected a host name or address, such as crontask.example.com")
    return normal


def peer_of(address: str) -> str:
    """What one client is counted by (a connection's share, a failed sign-in's log line): an
    IPv4 address (an IPv4-mapped IPv6 one as the IPv4 address it is), or the /64 of an IPv6
    address, the network a host is given and may send from any address of."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # no zone: fe80::1%eth0
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
