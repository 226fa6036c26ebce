"""Request headers that are one value each, refused when sent more than once (``400``).

``Authorization``, ``Origin`` and ``Sec-Fetch-Site`` are single values, not lists (RFC 9110
§5.3: only a list-valued header may be sent on several lines). Sent twice, the framework read
the first line and ignored the rest, while a proxy or another server before this one may read
the last: a bad first credential was a 401 and a good one a 200 whatever followed, and a
same-origin first ``Origin`` passed the cross-site check with another site's after it. Neither
reading is the sender's meaning, so neither is taken: the request is refused before any route,
credential or origin check sees it. (``If-Match`` and ``If-None-Match`` are lists: their lines
are read together, ``api.params``.)"""

from __future__ import annotations

from typing import Final

from starlette.types import Scope

# The headers, as the ASGI scope names them (lower case), and as a problem names them.
SINGLETONS: Final = {
    b"authorization": "Authorization",
    b"origin": "Origin",
    b"sec-fetch-site": "Sec-Fetch-Site",
}


def repeated(scope: Scope) -> str | None:
    """Why the request is refused, if it sends one of :data:`SINGLETONS` more than once."""
    seen: dict[bytes, int] = {}
    for name, _ in scope.get("headers") or ():
        if name in SINGLETONS:
            seen[name] = seen.get(name, 0) + 1
    for name, count in seen.items():
        if count > 1:
            return (
                f"the {SINGLETONS[name]} header was sent {count} times: it holds one value, "
                "not a list, so which line is meant cannot be told; send it once"
            )
    return None
