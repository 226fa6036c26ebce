"""The line a request of :mod:`~reconciler.cli.client` that failed or timed out ends in, and
whether what it asked may have been done: one that never went out (a connection refused, a
proxy that refused or did not open the tunnel to an https:// server, a connection that timed
out or broke before the request was sent) is :class:`~reconciler.cli.answers.Unsent`, nothing
done; one sent whose answer did not come is :class:`~reconciler.cli.answers.Unanswered`, and
``trigger`` says it may have run. How far a request went is told by httpcore's ``trace``
extension (:class:`Progress`); a request sent by a transport that tells nothing of it may have
gone out. A proxy that carried the request is named (``host:port ($VARIABLE)``, never its
credentials): the server may be fine, and asking whether `crontask run` runs sent the user the
wrong way."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler.cli.answers import RemoteError, Unanswered, Unsent
from reconciler.cli.client_tls import tls_problem
from reconciler.cli.terminal import printable

if TYPE_CHECKING:
    import httpx


def failed(exc: httpx.HTTPError, server: str, sent: bool) -> RemoteError:
    """The line of a request to ``server`` (as shown) that failed with ``exc``; ``sent``:
    whether it had gone out (:attr:`Progress.sent`)."""
    import httpx

    from reconciler.proxies import carried_by

    via = carried_by(exc)
    # A certificate that does not verify is a ConnectError too, but the server is there.
    tls = tls_problem(exc)
    if tls is not None:
        through = "" if via is None else f" through the proxy {printable(via)}"
        return RemoteError(f"TLS with {server}{through} failed: {tls}")
    proxy = None if via is None else f"the proxy {printable(via)}"
    # Refused, a name unknown, a tunnel the proxy would not open: the request never went out,
    # to crontask nor to a proxy that could pass it on, so nothing was done (a trigger may be
    # asked again). Unless the transport tells nothing of how far it went (``sent``).
    unsent = RemoteError if sent else Unsent
    if isinstance(exc, httpx.ConnectError):  # crontask or the proxy refused, or no such name
        if proxy is None:
            return unsent(f"cannot reach crontask at {server} (is `crontask run` running?)")
        return unsent(f"cannot reach {proxy} to ask crontask at {server}")
    if proxy is not None and isinstance(
        exc, httpx.ProxyError
    ):  # a CONNECT or SOCKS refusal: "407 ...", or the proxy could not reach crontask
        said = printable(str(exc))[:200] or type(exc).__name__
        return unsent(f"{proxy} refused the request to {server}: {said}")
    line = f"request to {server}{'' if proxy is None else f' through {proxy}'} failed"
    if not sent:  # a proxy that hung up on its CONNECT, a TLS handshake broken off
        return Unsent(f"{line} before it was sent: {type(exc).__name__}")
    # The request was sent (a connection that broke while reading the answer).
    return Unanswered(f"{line}: {type(exc).__name__}")


def timed_out(
    request: httpx.Request, progress: Progress, server: str, seconds: float
) -> RemoteError:
    """The line of a request to ``server`` (as shown) that ``seconds`` did not see answered:
    one never sent did nothing (:class:`Unsent`), one sent may have (:class:`Unanswered`).
    The proxy that carried it is named: a proxy that never opened the tunnel is the one that
    did not answer."""
    from reconciler.proxies import carried_by

    via = carried_by(request)
    through = "" if via is None else f" through the proxy {printable(via)}"
    within = f"within {seconds:g}s"
    if progress.sent:
        return Unanswered(f"crontask at {server} did not answer {within}{through}")
    if via is not None and not progress.tunnelled:
        said = f"the proxy {printable(via)} did not answer {within}"
        return Unsent(f"{said}; nothing was sent to crontask at {server}")
    return Unsent(f"crontask at {server} did not answer {within}{through}; nothing was sent to it")


@dataclass
class Progress:
    """How far a request went, as httpcore's ``trace`` extension tells: whether a proxy opened
    the tunnel asked of it (an HTTP proxy's ``CONNECT``, for an https:// server; a SOCKS
    proxy's), and whether the request's head began to go out (to the server, or to a proxy that
    forwards it: either may act on it). Until then, nothing reached crontask."""

    tunnelled: bool = False
    began: bool = False  # the request's head began to go out
    connecting: bool = False  # a CONNECT sent, its answer not read yet
    # Whether any event came: a transport that drops the extension (a custom one, an httpcore
    # that does) tells nothing, and a request it may have sent is not said never to have gone.
    traced: bool = False

    @property
    def sent(self) -> bool:
        """Whether the request may have reached crontask (or a proxy that forwards it)."""
        return self.began or not self.traced

    async def trace(self, event: str, info: Mapping[str, Any]) -> None:
        self.traced = True
        if event.endswith(".send_request_headers.started"):
            method = getattr(info.get("request"), "method", None)
            self.connecting = method == b"CONNECT"
            self.began = self.began or not self.connecting
        elif event.endswith(".receive_response_headers.complete") and self.connecting:
            self.connecting, self.tunnelled = False, True
        elif event.endswith(".setup_socks5_connection.complete"):  # a SOCKS proxy's tunnel
            self.tunnelled = True
