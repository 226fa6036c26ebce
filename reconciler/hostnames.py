"""Host names as a ``Host`` header names them, and the ``--allow-host`` values that name them.

Apart from ``reconciler.api.hosts`` (the check itself, which loads the web framework) so that
the command line reads ``--allow-host`` without loading it.
"""

from __future__ import annotations

import ipaddress
from typing import Final


def normal_name(name: str) -> str:
    """A host name as a ``Host`` header names it: lowercase, without the trailing dot, an
    international name in the ASCII form browsers and proxies send (``xn--bcher-kva.example``
    for ``bücher.example``)."""
    name = name.lower().rstrip(".")
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:  # no name IDNA can spell: no header will name it either
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
    if not name or len(name) > 253 or any(c.isspace() or c in "/@?#[]" for c in name):
        raise ValueError("expected a host name or address, such as crontask.example.com")
    if ":" in name:
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            raise ValueError(
                "a name without a port (every port of that name is answered)"
            ) from None
    return normal_name(name)
