"""Whether a host, as ``--listen`` or a ``Host`` header gives it, is this machine's loopback.

An address is read as the bind reads it (``socket.create_server`` in ``cli.daemon``), never
by resolving a name: ``127.0.0.0/8`` and ``::1``, an IPv4-mapped loopback address
(``::ffff:127.0.0.1``), and the IPv4 spellings the system's resolver reads as numbers before
any lookup (``127.1``, ``0x7f.1``, ``2130706433``). ``localhost`` is loopback (``/etc/hosts``);
any other name is not, ``localhost.`` either: a name with the root's dot is looked up in DNS,
not in ``/etc/hosts``, and may name another address of this machine. Nor is ``127.0.0.1.``:
the resolver reads it as a name, not as an address. Nor is an unspecified address
(``0.0.0.0``, ``::``, ``::ffff:0.0.0.0``): bound, it takes every interface's connections.

Apart from ``reconciler.api`` (which loads the web framework), as ``hostnames`` is, so that the
command line (``cli.credentials``) reads a ``--server`` without loading it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Final

# What the resolver may read as an IPv4 address of one to four numbers (decimal, octal, hex);
# anything else is not given to it (no name reaches a lookup). 4 hex numbers of 10 digits: 47.
_AS_NUMBERS: Final = re.compile(r"[0-9a-fA-FxX.]{1,47}")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an IPv6 address with or without its brackets) is loopback, as the
    module says; ``False`` for any other name or text."""
    if host.lower() == "localhost":
        return True
    address = numeric_address(host.removeprefix("[").removesuffix("]"))
    return address is not None and address.is_loopback


def numeric_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``host`` (an IPv6 one without brackets) is as the system reads it without
    a lookup (see the module), an IPv4-mapped one as the IPv4 address it maps; ``None`` for a
    name or other text, ``127.0.0.1.`` too. The client's reading of ``--server`` too
    (``cli.credentials``): what it connects to is read so."""
    address = _address(host)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not _AS_NUMBERS.fullmatch(host):
        return None
    # AI_NUMERICHOST: numbers only, never a lookup; as the bind of a host without a colon
    # (AF_INET) reads them, so what is called loopback here is what the socket is bound to.
    try:
        found = socket.getaddrinfo(
            host, None, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST
        )
    except (OSError, UnicodeError):  # socket.gaierror is an OSError
        return None
    return ipaddress.IPv4Address(found[0][4][0])
