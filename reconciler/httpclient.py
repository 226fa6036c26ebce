"""The httpx client of crontask's outgoing requests (an http task's, a notification's): what
both need of it, in one place below the runner and the sinks.

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

A response's head is bounded: httpx reads interim responses (``100 Continue``, ...) until the
final one with no limit of their own, and each read of a stream of them came at once, so its
timeout, which is per read, never fired; a receiver answering every request with them kept the
event loop parsing for the whole attempt. A request now fails (``httpx.RemoteProtocolError``)
once :data:`HEAD_MAX` bytes of its response hold no final status (more than ten heads as
large as httpx takes, interim ones included: no response read before is refused short of
that), or more than :data:`INTERIM_MAX` interim heads have come (each costs h11's parsing, not
its bytes), read :data:`HEAD_READ` at a time so that other work runs between the reads.
httpx has no setting for it: each transport's connections get a network backend that counts
what a request reads until its response's head has come. httpx names no
backend of its own, so it is set on the pool httpx builds (httpcore's ``_network_backend``, not
public): a version without it is said in a warning and leaves heads unbounded, and
``tests/test_http_head_bound.py`` fails.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import ipaddress
import logging
import os
import re
import ssl
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import httpcore
import httpx

log = logging.getLogger("crontask.http")

# httpx (httpcore) takes at most 100 KiB for one head; an Early Hints before the final head
# counts too. A MiB of header lines, read HEAD_READ at a time, is a few milliseconds of the
# loop's; a MiB of 25-byte "100 Continue" heads was 42 000 heads for h11 to parse, 0.45 s of
# the loop's CPU an attempt: the heads are counted too (INTERIM_MAX).
HEAD_MAX: Final = 1024 * 1024
HEAD_READ: Final = 8 * 1024  # bytes per read until the head has come
# Interim responses (1xx) a final one may follow: a server sends one or two (100 Continue, 103
# Early Hints); 64 parse in about a millisecond.
INTERIM_MAX: Final = 64
NO_FINAL_STATUS: Final = f"no final status in the response's first {HEAD_MAX // 1024 // 1024} MiB"
TOO_MANY_INTERIM: Final = f"no final status after {INTERIM_MAX} interim responses"
# A head ends at a blank line, as h11 finds it: "\n\r?\n" ("\n\n" and "\r\n\n" too).
_HEAD_END: Final = re.compile(rb"\n\r?\n")
_SCHEMES: Final = ("http", "https", "all")  # the *_PROXY variables httpx reads
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080}  # httpcore's
_VIA: Final = "crontask.proxy"  # a request's extension: the proxy that carries it, as said


# Says that a proxy setting is left out: the variable as the environment spells it, and why.
Warn = Callable[[str, str], None]


def async_client(
    *,
    timeout: float,
    verify: ssl.SSLContext | bool = True,
    headers: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    direct: bool = False,
    warn: Warn | None = None,
) -> httpx.AsyncClient:
    """A client that follows no redirect, with the environment's usable proxies (none when
    ``direct``), each of its transports bounding the response head; a setting left out is said
    through ``warn`` (default: a logged warning). ``transport`` (tests): used for every
    request, with no proxy, as httpx does with one."""
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
    if transport is None:
        transport = _HeadBounded(verify=verify)
        proxies = Proxies() if direct else proxy_routes(warn)
        for pattern, proxy in proxies.proxies:
            through = _HeadBounded(verify=verify, proxy=(proxy, _via(pattern, proxy)))
            mounts[pattern] = _Routed(through, transport, proxies)
    return httpx.AsyncClient(
        timeout=timeout,
        headers=headers,
        follow_redirects=False,
        trust_env=False,  # the proxies are the mounts: read here, not by httpx
        transport=transport,
        mounts=mounts,
    )


# -- proxies ---------------------------------------------------------------------------------


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
        """Whether ``host`` (a URL's: an IPv6 address without brackets) is an address in a range;
        a name is not (it is not resolved, as curl does not)."""
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
        """Adds httpx's ``pattern``; False if httpx could not match against it."""
        try:
            url = httpx.URL(pattern)  # as httpx's URLPattern reads it
        except (httpx.InvalidURL, ValueError):
            return False
        where = ("" if url.scheme == "all" else url.scheme, url.port)
        host = "" if url.host == "*" else url.host
        if not host:
            self._anywhere.append(where)
        elif host.startswith("*."):
            self._under.setdefault(host[2:], []).append(where)
        elif host.startswith("*"):
            self._in.setdefault(host[1:], []).append(where)
        else:
            self._exact.setdefault(host, []).append(where)
        return True

    def __contains__(self, url: httpx.URL) -> bool:
        host = url.host
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
        return url.host in self.ranges or url in self.hosts


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
    via = failed.extensions.get(_VIA)
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
    whose prefix length is none."""
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
    return f"all://*{entry}"


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


def _via(pattern: str, proxy: str) -> str:
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


class _Routed(httpx.AsyncBaseTransport):
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


# -- the response head -----------------------------------------------------------------------


class _Budget:
    """What a request may still read before its response's final head."""

    __slots__ = ("ends", "left", "tail")

    def __init__(self) -> None:
        self.left = HEAD_MAX
        # Heads ended so far (a blank line ends each, interim or final: while a read is still
        # asked for, every one of them was interim), and the last bytes read, in which an end
        # split between two reads begins.
        self.ends = 0
        self.tail = b""

    def count(self, data: bytes) -> None:
        # An end begun in the tail (the last two bytes before) is counted with the new data;
        # one wholly in the tail was counted then.
        seen = self.tail + data
        self.ends += len(_HEAD_END.findall(seen)) - len(_HEAD_END.findall(self.tail))
        self.tail = seen[-2:]


# Set while a transport waits for a response's head: the reads of that request (in its task).
_head: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "crontask_http_head", default=None
)


class _HeadBounded(httpx.AsyncHTTPTransport):
    """httpx's transport, its connections reading through :class:`_Backend`. Until
    ``handle_async_request`` returns, what a request reads is its response's head (and the
    interim responses before it): the body is read later, through the response's stream."""

    def __init__(
        self, *, verify: ssl.SSLContext | bool, proxy: tuple[str, str] | None = None
    ) -> None:
        """``proxy``: its URL, and how an error names it (:func:`carried_by`)."""
        super().__init__(verify=verify, proxy=None if proxy is None else proxy[0])
        self._via = None if proxy is None else proxy[1]
        # httpx builds the pool (direct, HTTP or SOCKS proxy) without a way to name its
        # network backend; httpcore's pools and proxies give theirs to every connection.
        pool = self._pool
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.AsyncNetworkBackend):
            pool._network_backend = _Backend(backend)
        else:
            _unbounded()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._via is not None:  # read back from the request an error carries
            request.extensions[_VIA] = self._via
        token = _head.set(_Budget())
        try:
            return await super().handle_async_request(request)
        finally:
            _head.reset(token)


@functools.cache
def _unbounded() -> None:
    """Said once: an httpx or httpcore whose pool has no network backend to wrap."""
    log.warning(
        "response heads are not bounded",
        extra={"fields": {"httpx": httpx.__version__, "httpcore": httpcore.__version__}},
    )


class _Backend(httpcore.AsyncNetworkBackend):
    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        self._backend = backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )
        return _Stream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )
        return _Stream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _Stream(httpcore.AsyncNetworkStream):
    """A connection whose reads, while a request waits for its head, count against it."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        budget = _head.get()
        if budget is None:  # the body: bounded by its reader
            return await self._stream.read(max_bytes, timeout)
        if budget.left <= 0:
            raise httpcore.RemoteProtocolError(NO_FINAL_STATUS)
        if budget.ends > INTERIM_MAX:
            raise httpcore.RemoteProtocolError(TOO_MANY_INTERIM)
        data = await self._stream.read(min(max_bytes, budget.left, HEAD_READ), timeout)
        budget.left -= len(data)
        budget.count(data)
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(
            await self._stream.start_tls(
                ssl_context, server_hostname=server_hostname, timeout=timeout
            )
        )

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)
