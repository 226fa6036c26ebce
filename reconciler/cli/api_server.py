"""``crontask run``'s HTTP server: the API's app and the status page, served by uvicorn on the
socket ``cli.daemon`` bound. Imported by ``cli.daemon`` only once every option is checked and
the run store is open: this module loads the web stack (FastAPI, the page, uvicorn), about a
second, which a refused option never waits for."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import resource
import socket
from collections.abc import Iterator
from typing import Final

import uvicorn

from reconciler import web
from reconciler.api.app import create_app
from reconciler.api.auth import AuthConfig, is_loopback
from reconciler.api.authfile import AuthFile
from reconciler.api.hosts import external_origin, names_answered
from reconciler.api.webhook_secret import WebhookSecret
from reconciler.cli.connections import connection_limit, guarded
from reconciler.controller.runtime import HttpServer
from reconciler.controller.view import RuntimeView
from reconciler.sinks.metrics import Metrics

log = logging.getLogger("crontask.api")

# Seconds the API's requests in flight get at a stop before uvicorn cancels them. Without a
# bound uvicorn waits for each: a request queued at the API's door (api/admission.py) waits up
# to 30 s for a place, then is served, past the stop's budget (the Deployment's grace). Each
# request's own waits (a page of history, a run's decision) are at most this long, so a request
# that is only slow is not cut. An int: uvicorn's type for it.
HTTP_STOP_WAIT: Final = 10


def http_server(
    args: argparse.Namespace,
    host: str,
    port: int,
    sock: socket.socket,
    auth_file: AuthFile | None,
    auth: AuthConfig | None,
    webhook_secret: WebhookSecret | None,
) -> HttpServer:
    """The server of ``--listen``'s ``host`` and ``port``, on ``sock`` (bound to them), with
    what ``cli.daemon`` checked."""

    async def serve_http(runtime: RuntimeView, metrics: Metrics, stop: asyncio.Event) -> None:
        # On loopback the address is the fence: a page that rebinds its own name to it must not
        # pass as this server's caller, with auth or without; without auth, on any address,
        # where every caller is the admin (api/hosts.py).
        hosts = names_answered(
            host, args.external_url, args.allow_host, authenticated=auth is not None
        )
        app = create_app(
            runtime,
            auth=auth,
            metrics=metrics,
            webhook_secret=webhook_secret,
            hosts=hosts,
            auth_file=auth_file,
            external_url=args.external_url,
            max_tasks=args.max_tasks,
            allow_empty=args.allow_empty,
        )
        # The status page at /; without auth its header says whether only this host may use it.
        # Behind a proxy serving it under a path (--external-url's), its links begin with it.
        base = web.page_base(args.external_url)
        web.install(app, _session(args.external_url), loopback=is_loopback(host), base=base)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan="off",
            # Bounded connections and request heads: see cli/connections.py.
            http=guarded(connection_limit(resource.getrlimit(resource.RLIMIT_NOFILE)[0])),
            # No WebSocket is served. With one of its libraries importable (uvicorn[standard],
            # python3-websockets) uvicorn would upgrade a connection to it, out of the guard's
            # sight: it never heard the connection end, so each stayed counted against its
            # address for good. Without: the handshake is answered as the GET it also is.
            ws="none",
            access_log=False,  # the API logs one structured line per request itself
            timeout_graceful_shutdown=HTTP_STOP_WAIT,
            log_config=None,
        )
        logging.getLogger("uvicorn.error").addFilter(_UPGRADE_WARNINGS)  # a second add is none
        server = _Server(config)
        serving = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        address = _bound(host, sock)  # with :0, the port the kernel picked
        log.info("api listening", extra={"fields": {"address": address, "auth": bool(auth)}})
        if auth is None and not is_loopback(host):
            log.warning(
                "the API is served without authentication (--insecure-no-auth): anyone who "
                "can reach it can create, delete and run tasks. Requests are answered only "
                "when addressed to an IP address, localhost, --external-url's host or an "
                "--allow-host name (others get 421: a web page could make its own name resolve "
                "here, DNS rebinding); give each name it is called by as --allow-host NAME",
                extra={"fields": {"address": address}},
            )
        if auth_file is not None:
            await auth_file.watch(stop)  # until stop: a token removed stops working at once
        await stop.wait()
        server.should_exit = True
        await serving

    return serve_http


def _session(external_url: str | None) -> web.Session:
    """The page's sessions. The cookie's name tells this instance from another on the same
    host: after ``--external-url``'s origin (replicas behind it share sessions), else after the
    origin each request addresses, not the address bound here (web/session.py)."""
    return web.Session(
        secure_cookie=str(external_url or "").lower().startswith("https://"),
        instance=external_origin(external_url),
        by_host=True,
    )


def _bound(host: str, sock: socket.socket) -> str:
    """HOST:PORT as given to --listen, with the port ``sock`` is bound to."""
    port = sock.getsockname()[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _UpgradeWarnings(logging.Filter):
    """Drops uvicorn's two warnings for each request that asks to upgrade (a WebSocket's
    handshake, h2c): any client could write them at will, two lines a request, and the second
    advises installing a WebSocket library, which is what ``ws="none"`` keeps out of use. The
    request is answered, and logged by the API, as the plain request it also is. And the error
    uvicorn logs when a stop cuts requests in flight (``HTTP_STOP_WAIT``): the API logs each one
    cut, answered 503 (``api.app.RequestLog``), a stop's ordinary end, not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        said = str(record.msg)
        return not said.startswith(
            ("Unsupported upgrade request", "No supported WebSocket", "Cancel %s running task")
        )


_UPGRADE_WARNINGS = _UpgradeWarnings()


class _Server(uvicorn.Server):
    """crontask owns SIGTERM/SIGINT/SIGHUP (graceful shutdown of runs); uvicorn stops with
    it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
