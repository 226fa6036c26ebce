"""Request headers that are one value each, refused when sent more than once (``400``).

``Authorization``, ``Origin`` and ``Sec-Fetch-Site`` are single values, not lists (RFC 9110
§5.3: only a list-valued header may be sent on several lines). Sent twice, the framework read
the first line and ignored the rest, while a proxy or another server before this one may read
the last: a bad first credential was a 401 and a good one a 200 whatever followed, and a
same-origin first ``Origin`` passed the cross-site check with another site's after it. Neither
reading is the sender's meaning, so neither is taken: the request is refused before any route,
credential or origin check sees it. Lines whose values are byte-identical are one value said
again, with no doubt of which is meant (a proxy that adds the header where the client sent it
already: Istio's ``add``, HAProxy's ``add-header``): they pass. (``If-Match`` and
``If-None-Match`` are lists: their lines are read together, ``api.params``.)"""

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
    """Why the request is refused, if it sends one of :data:`SINGLETONS` more than once with
    values that differ."""
    seen: dict[bytes, list[bytes]] = {}
    for name, value in scope.get("headers") or ():
        if name in SINGLETONS:
            seen.setdefault(name, []).append(value)
    for name, values in seen.items():
        if len(set(values)) > 1:
            return (
                f"the {SINGLETONS[name]} header was sent {len(values)} times with different "
                "values: it holds one value, not a list, so which line is meant cannot be "
                "told; send it once"
            )
    return None
