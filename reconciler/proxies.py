"""The proxies of crontask's outgoing requests (an http task's, a notification's, the CLI's),
as :mod:`reconciler.httpclient` routes them.

Proxies come from the environment as httpx reads them (``HTTP_PROXY``, ``HTTPS_PROXY``,
``ALL_PROXY``, ``NO_PROXY``, or their lower-case forms, which win), but a setting httpx cannot
use no longer ends anything: httpx refused ``ALL_PROXY=socks4://...`` and
``NO_PROXY=localhost,[::1]`` when the client was built, which stopped the notifier at start and
failed every http task, naming no variable. Such a proxy, or such a ``NO_PROXY`` entry, is left
out with one warning per setting that names the variable and never its value (a proxy URL may
hold a password); requests go on without it. ``NO_PROXY`` also takes an IPv6 address in
brackets (``[::1]``, as in a URL), which httpx does not, and address ranges (``10.0.0.0/8``,
``fd00::/8``), as curl, Go and requests do: httpx made ``10.0.0.0/8`` the one host
``10.0.0.0`` (and refused ``fd00::/8``), so that a request to 10.1.2.3 went through the proxy,
with its headers. A request whose host is an address in a range goes direct; a host name is not
resolved for it (as curl does not). ``NO_PROXY`` is read once, not at each client: httpx
compiled a pattern per entry for every client it built (a second per http run for 5 000).

Names are matched as curl matches them, so that what curl sends direct crontask does too: one
trailing dot, of a request's host or of an entry, is dropped (``example.org.`` is example.org to
the resolver: httpx sent ``crontask.example.org.`` to the proxy, with the token, for
``NO_PROXY=example.org``); ``.example.org`` is example.org and the names in it. A host the
resolver reads as an IPv4 address (``10.1``, ``167772161``, ``0xa.0.0.1``: inet_aton's forms)
is that address, in a range or not.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import logging
import os
import re
import socket
import urllib.request
from collections.abc import Callable, Iterable
from typing import Final

import httpx

log = logging.getLogger("crontask.http")

_SCHEMES: Final = ("http", "https", "all")  # the *_PROXY variables httpx reads
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080}  # httpcore's
VIA: Final = "crontask.proxy"  # a request's extension: the proxy that carries it, as said
# A host that may be an IPv4 address in a form ipaddress refuses and inet_aton (the resolver's)
# reads: "10.1", "167772161", "0xa.0.0.1", "012.0.0.1" (octal).
_IPV4_FORMS: Final = re.compile(r"[0-9a-fA-FxX.]+")


# Says that a proxy setting is left out: the variable as the environment spells it, and why.
Warn = Callable[[str, str], None]


class _Ranges:
    """``NO_PROXY``'s address ranges, by prefix length: whether an address is in one costs a set
    lookup per length named, however many ranges (a few lengths, as a rule)."""

    __slots__ = ("_lookups",)

    def __init__(self, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> None:
        prefixes: dict[tuple[int, int], set[int]] = {}
        for network in networks:
            shift = network.max_prefixlen - network.prefixlen
            prefixes.setdefault((network.version, shift), set()).add(
                int(network.network_address) >> shift
            )
        # (IP version, bits after the prefix, the ranges' prefixes)
        self._lookups: Final = tuple((v, shift, frozenset(p)) for (v, shift), p in prefixes.items())

    def __contains__(self, host: str) -> bool:
        """Whether ``host`` (a URL's, as :func:`_matched_host` has it: an IPv6 address without
        brackets) is an address in a range; a name is not (it is not resolved, as curl does
        not). An IPv4-mapped IPv6 address (``::ffff:10.0.0.1``) is in IPv6 ranges only, as curl
        has it: ``::ffff:0:0/96`` names them."""
        if not self._lookups:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        number = int(address)
        return any(
            version == address.version and number >> shift in prefixes
            for version, shift, prefixes in self._lookups
        )


# A NO_PROXY entry's scheme ("" for any) and port (None for any), as httpx's mount pattern has it.
_Where = tuple[str, int | None]


class _Hosts:
    """``NO_PROXY``'s host names and addresses, matched as httpx matches their mount patterns
    (``all://*example.com``: the domain and the names in it; ``all://*.example.com``: the names
    in it; ``all://10.0.0.1``: that host), by host: a request looks up its host and the domains
    it is in, however many entries (httpx tried each entry's pattern in turn)."""

    __slots__ = ("_anywhere", "_exact", "_in", "_under")

    def __init__(self) -> None:
        self._exact: dict[str, list[_Where]] = {}  # the host itself
        self._in: dict[str, list[_Where]] = {}  # the domain and the names in it
        self._under: dict[str, list[_Where]] = {}  # the names in the domain
        self._anywhere: list[_Where] = []  # a pattern with no host (http://)

    def add(self, pattern: str) -> bool:
        """Adds httpx's ``pattern`` (its host's one trailing dot dropped: the same name); False
        if httpx could not match against it."""
        try:
            url = httpx.URL(pattern)  # as httpx's URLPattern reads it
        except (httpx.InvalidURL, ValueError):
            return False
        where = ("" if url.scheme == "all" else url.scheme, url.port)
        host = "" if url.host == "*" else url.host
        if not host:
            self._anywhere.append(where)
        elif host.startswith("*."):
            self._under.setdefault(_rooted(host[2:]), []).append(where)
        elif host.startswith("*"):
            self._in.setdefault(_rooted(host[1:]), []).append(where)
        else:
            self._exact.setdefault(_rooted(host), []).append(where)
        return True

    def matches(self, host: str, url: httpx.URL) -> bool:
        """Whether a request to ``url``, whose host is ``host`` (:func:`_matched_host`), goes
        direct."""
        found = [*self._anywhere, *self._exact.get(host, ()), *self._in.get(host, ())]
        dot = host.find(".")
        while dot != -1:  # each domain the host is in
            domain = host[dot + 1 :]
            found += [*self._in.get(domain, ()), *self._under.get(domain, ())]
            dot = host.find(".", dot + 1)
        return any(s in ("", url.scheme) and p in (None, url.port) for s, p in found)


@dataclasses.dataclass(frozen=True)
class Proxies:
    """The environment's proxy settings as crontask uses them, read once (:func:`proxy_routes`)."""

    # httpx's mount pattern of each proxy ("https://", "all://") and the proxy's URL.
    proxies: tuple[tuple[str, str], ...] = ()
    # What NO_PROXY sends direct: host names and addresses (curl's rules), address ranges.
    hosts: _Hosts = dataclasses.field(default_factory=_Hosts)
    ranges: _Ranges = dataclasses.field(default_factory=lambda: _Ranges(()))

    def direct(self, url: httpx.URL) -> bool:
        """Whether a request to ``url`` goes direct, whatever the proxy."""
        host = _matched_host(url)
        return host in self.ranges or self.hosts.matches(host, url)


def _matched_host(url: httpx.URL) -> str:
    """``url``'s host as ``NO_PROXY`` is matched against it, as curl has it: without one
    trailing dot, and an IPv4 address the resolver would read (``10.1``, ``167772161``) as
    ``ipaddress`` writes it (``10.0.0.1``)."""
    host = _rooted(url.host)
    if _IPV4_FORMS.fullmatch(host) and not _is_address(host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:  # a name after all ("cafe", "4294967296")
            pass
    return host


def _rooted(name: str) -> str:
    """``name`` without its one trailing dot (``example.org.``: the name as the DNS writes it,
    rooted), which is the same name."""
    return name[:-1] if name.endswith(".") and len(name) > 1 else name


def proxy_routes(warn: Warn | None = None) -> Proxies:
    """The environment's usable proxies and what ``NO_PROXY`` sends direct; what httpx cannot
    use left out, said once per setting (through ``warn``, default: a logged warning)."""
    return _routes(tuple(sorted(urllib.request.getproxies().items())), warn or _log_not_used)


def carried_by(failed: httpx.HTTPError | httpx.Request) -> str | None:
    """The proxy that carried a request (``failed``, or the one of the error ``failed``) as
    ``host:port ($VARIABLE)``, never its credentials; None when it went direct, or is not
    known."""
    if isinstance(failed, httpx.HTTPError):
        try:
            failed = failed.request
        except RuntimeError:  # raised before a request was made
            return None
    via = failed.extensions.get(VIA)
    return via if isinstance(via, str) else None


@functools.cache
def _routes(settings: tuple[tuple[str, str], ...], warn: Warn) -> Proxies:
    """As httpx's ``get_environment_proxies`` reads ``settings`` (urllib's ``getproxies``),
    each checked, with ``NO_PROXY``'s address ranges. Cached, so that a process warns once per
    setting, not at each request, and parses ``NO_PROXY`` once."""
    found = dict(settings)
    entries = [entry.strip() for entry in found.get("no", "").split(",")]
    if "*" in entries:  # NO_PROXY=*: no proxy at all
        return Proxies()
    proxies: list[tuple[str, str]] = []
    for scheme in _SCHEMES:
        value = found.get(scheme)
        if not value:
            continue
        url = value if "://" in value else f"http://{value}"
        problem = _proxy_problem(url)
        if problem is None:
            proxies.append((f"{scheme}://", url))
        else:
            warn(_variable(f"{scheme}_proxy"), problem)
    hosts = _Hosts()
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for number, entry in enumerate(entries, 1):
        if not entry:
            continue
        direct = _no_proxy_entry(entry)
        if direct is None or (isinstance(direct, str) and not hosts.add(direct)):
            what = f"entry {number} of {len(entries)} is not a host name, address, range or URL"
            warn(_variable("no_proxy"), f"{what}; it is left out")
        elif not isinstance(direct, str):
            networks.append(direct)
    return Proxies(tuple(proxies), hosts, _Ranges(networks))


def _proxy_problem(url: str) -> str | None:
    """Why httpx cannot use ``url`` as a proxy, in words that never quote it; None if it can."""
    try:
        scheme = httpx.URL(url).scheme
    except (httpx.InvalidURL, ValueError):
        return "not a URL; left out"
    try:
        proxy = httpx.Proxy(url)
    except (httpx.InvalidURL, ValueError):
        return f"a {scheme} proxy: only http, https, socks5 and socks5h ones can be used; left out"
    if not proxy.url.host:  # http://, http://:3128: every request would fail naming no variable
        return "a proxy URL without a host; left out"
    return None


def _no_proxy_entry(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | str | None:
    """A ``NO_PROXY`` entry's address range (``10.0.0.0/8``, ``fd00::/8``, ``[fd00::]/8``; bits
    past the prefix ignored, as curl does), else httpx's pattern for it; None for an address
    whose prefix length is none, or for dots alone."""
    if not entry.strip("."):  # "." is no name: dropping its dots would leave a match of all
        return None
    address, slash, length = entry.partition("/")
    if slash and "://" not in entry:
        if address.startswith("[") and address.endswith("]"):
            address = address[1:-1]
        try:
            return ipaddress.ip_network(f"{address}/{length}", strict=False)
        except ValueError:
            if _is_address(address):
                return None
    return _no_proxy_pattern(entry)


def _no_proxy_pattern(entry: str) -> str:
    """httpx's pattern for a ``NO_PROXY`` entry that is no address range (curl's rules), and
    the bracketed IPv6 address that httpx would make the pattern of a host name ending in it."""
    if "://" in entry:
        return entry
    if entry.startswith("["):
        return f"all://{entry}"
    if _is_address(entry) and ":" in entry:
        return f"all://[{entry}]"
    if _is_address(entry) or entry.lower() == "localhost":
        return f"all://{entry}"
    # ".example.org": example.org and the names in it, as curl has it (httpx: the names only).
    return f"all://*{entry.removeprefix('.')}"


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _log_not_used(variable: str, problem: str) -> None:
    log.warning(
        "proxy setting not used", extra={"fields": {"variable": variable, "problem": problem}}
    )


def proxy_named(pattern: str, proxy: str) -> str:
    """The proxy ``proxy`` of the mount ``pattern`` (``"https://"``) as an error names it:
    ``host:port ($HTTPS_PROXY)``, without its credentials (its URL was checked as usable)."""
    url = httpx.URL(proxy)
    port = url.port or _DEFAULT_PORTS.get(url.scheme)
    host = f"[{url.host}]" if ":" in url.host else url.host
    scheme = pattern.partition("://")[0]
    return f"{host}:{port} (${_variable(f'{scheme}_proxy')})"


def _variable(name: str) -> str:
    """The variable ``name`` (``all_proxy``) as the environment spells it: urllib reads any
    case, the lower-case one winning."""
    if name in os.environ:
        return name
    return next((v for v in sorted(os.environ) if v.lower() == name), name.upper())


class Routed(httpx.AsyncBaseTransport):
    """A proxy's mount: the proxy's transport, except for a request that ``NO_PROXY`` sends
    direct, which goes by the client's own. httpx's mounts match a host, not an address range,
    and httpx compiled a pattern per ``NO_PROXY`` entry for every client it built."""

    def __init__(
        self,
        through: httpx.AsyncBaseTransport,
        direct: httpx.AsyncBaseTransport,
        proxies: Proxies,
    ) -> None:
        self._through = through
        self._direct = direct
        self._proxies = proxies

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        direct = self._proxies.direct(request.url)
        return await (self._direct if direct else self._through).handle_async_request(request)

    async def aclose(self) -> None:
        await self._through.aclose()  # the direct transport is the client's: it closes it
