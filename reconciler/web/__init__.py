"""The status page at ``/``: server-rendered HTML over the same ``RuntimeView`` as the API.

The rule of this package: it reads and acts only through the ``RuntimeView`` (and its run
store), as the API does; it changes no task (its one action, Run now, starts a manual run);
and every byte the browser loads comes from crontask itself (templates and assets are package
data; one small script of its own, no framework, no CDN), so the page works air-gapped.

:func:`install` adds the page's routes to an app made by ``reconciler.api.app.create_app``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI

from reconciler.api.routing import required_role
from reconciler.core.urls import page_base
from reconciler.web import pages
from reconciler.web.session import PageRoute, Session


def install(
    app: FastAPI,
    session: Session | None = None,
    clock: Callable[[], datetime] | None = None,
    *,
    loopback: bool = True,
    base: str = "",
) -> FastAPI:
    """Serve the page on ``app`` (its routes declare their roles like the API's). ``clock``:
    what "now" is for relative times and the timeline (tests pin it). ``loopback``: whether
    the server listens on loopback only; without auth the header says who may use the page
    (``crontask run`` listens elsewhere without auth only with ``--insecure-no-auth``).
    ``base``: the path people reach the page under (``core.urls.page_base``), which each of its
    links, forms, assets and redirects begins with; the routes stay where they are (a proxy
    takes the path off before it forwards)."""
    for route in pages.router.routes:
        if not isinstance(route, PageRoute):
            raise RuntimeError(f"{route!r} is not a PageRoute")
        required_role(route)
    app.state.crontask_session = session or Session()
    app.state.crontask_clock = clock
    app.state.crontask_loopback = loopback
    trimmed = base.strip("/")
    app.state.crontask_base = f"/{trimmed}" if trimmed else ""
    app.include_router(pages.router)
    return app


__all__ = ["Session", "install", "page_base"]
