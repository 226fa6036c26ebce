"""What a receiver's URL may be (``notify_config`` checks each ``url`` and ``urlFile`` with
:func:`check_url`, at start and at each delivery; ``--external-url`` is checked so too): an
http(s) URL of bounded length that httpx can send to, whose host is a host name or an IP
address, with no environment variable left unexpanded. httpx would send to any host it reads
(``${X}``, ``a b``), and such a mistake would be found again at each delivery. No message
repeats the URL: a webhook's URL is often its secret (Slack's are). Pure: no I/O."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from typing import Final

import httpx

MAX_URL: Final = 2048


def check_url(url: str, *, instead: str = "") -> None:
    """ValueError unless ``url`` is an http(s) URL of bounded length that httpx can send to
    (a host, a port in 1-65535), whose host is a host name or an IP address. The message does
    not repeat the URL: a webhook's URL is often its secret (Slack's are). ``instead`` follows
    the words for an environment variable left unexpanded: what to write in its place."""
    if len(url) > MAX_URL:
        raise ValueError(f"the URL is longer than {MAX_URL} characters")
    # ${HOOK_URL} or $HOOK_URL, as a shell or a Compose file would expand it: nothing here does,
    # and the host httpx reads in it ("${hook_url}") would only fail each delivery's lookup.
    if re.search(r"^\$|\$\{", url):
        raise ValueError(_NOT_EXPANDED + instead)
    # The scheme is case-insensitive (RFC 3986 §3.1): httpx sends HTTPS://h/ as https://h/.
    if not re.match(r"^https?://[^\s/?#]+", url, re.IGNORECASE) or any(c.isspace() for c in url):
        raise ValueError("the URL must start with http:// or https:// and hold no spaces")
    # What the regular expression lets through may still be no URL to httpx (``[::1``,
    # ``h:abc``) or one it fails on only when sending (``h:99999``): refused here, where the
    # error has a place, not at each delivery. httpx's own message quotes the URL: not kept.
    try:
        parsed = httpx.URL(url)
        # Read here, in the try: httpx decodes an IDNA host (xn--...) only when asked, and
        # idna's error (a ValueError) quotes it.
        host = parsed.host
    except (httpx.InvalidURL, ValueError):
        raise ValueError("the URL is not valid (its host or port cannot be read)") from None
    if not host:
        raise ValueError("the URL has no host")
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise ValueError("the URL's port must be between 1 and 65535")
    if any(c in host for c in "${}"):
        raise ValueError(_NOT_EXPANDED + instead)
    if (problem := _host_problem(parsed.raw_host.decode("ascii"))) is not None:
        raise ValueError(problem)


_NOT_EXPANDED: Final = "environment variables are not expanded here"
# RFC 1123's labels, and '_', which resolvers look up as written (a Docker Compose service's
# name, as the http action's URL may have it): httpx sends to any host it reads ("a b" as
# "a%20b", 'h"<>'), and such a one is a mistake that each delivery would find out again.
_LABEL: Final = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# What inet_aton reads as a number (1.2.3 is 1.2.0.3; 0x7f.1 is 127.0.0.1), not as a name.
_NUMBER: Final = re.compile(r"[0-9]+|0x[0-9a-f]*")


def _host_problem(host: str) -> str | None:
    """Why ``host`` (httpx's raw host: lower case, an international name IDNA-encoded) is no
    host name or IP address, or None. An IP literal has been checked by httpx: an IPv6 one
    (holding ':'), and four numbers (``300.1.1.1`` is refused there); a trailing dot is a
    fully qualified name's."""
    if ":" in host:
        return None
    labels = host.removesuffix(".").split(".")
    if _NUMBER.fullmatch(labels[-1]):
        with contextlib.suppress(ValueError):
            ipaddress.IPv4Address(host.removesuffix("."))
            return None
        return "the URL's host ends in a number but is not an IPv4 address (as 192.0.2.1)"
    if len(host.removesuffix(".")) > 253 or not all(_LABEL.fullmatch(lab) for lab in labels):
        return (
            "the URL's host is not a host name or an IP address (a name is labels of 1 to 63 "
            "letters, digits, '-' and '_', joined by '.', with no '-' first or last)"
        )
    return None
