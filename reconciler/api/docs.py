"""``/docs`` (Swagger UI) and ``/redoc``, served entirely by crontask, so they work where no
request may leave the cluster.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (and ReDoc's fonts from Google). Here
the JavaScript, CSS and icon come from the ``fastapi-offline`` package, which bundles Swagger
UI 5 (Apache-2.0) and ReDoc 2 (MIT), and are served under ``/docs/assets/``; Swagger UI's
validator badge, which would call an external validator, is off. Nothing on either page
names another host (``tests/api/test_docs.py`` checks every reference of both pages).

The bundles themselves hold URLs the pages never load, and one they do: ReDoc's sidebar shows
a logo from ``cdn.redoc.ly``. So both pages are sent with a Content-Security-Policy that
allows this origin only (plus inline scripts and styles, ``data:`` images and ``blob:``
workers, which never leave the browser): the browser itself refuses any other request.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Final

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from reconciler.api.auth import PUBLIC, role_extra
from reconciler.api.problems import ProblemError
from reconciler.api.routing import GuardedRoute, operation_id
from reconciler.core.urls import page_base

ASSETS_URL: Final = "/docs/assets"
ASSETS: Final = frozenset(
    {"swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"}
)
_MEDIA: Final = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
_CACHE: Final = "public, max-age=86400"  # the files change only with the package
CSP: Final = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def assets_dir() -> Path:
    """The folder of the bundled files (inside the installed ``fastapi_offline`` package)."""
    return Path(str(resources.files("fastapi_offline") / "static"))


def router(openapi_url: str, title: str, external_url: str | None = None) -> APIRouter:
    """``external_url``: ``--external-url``, whose path (where a reverse proxy serves crontask,
    ``core.urls.page_base``) the pages' URLs begin with, as the status page's do."""
    base = page_base(external_url)
    docs = APIRouter(route_class=GuardedRoute, generate_unique_id_function=operation_id)
    public = role_extra(PUBLIC)

    @docs.get("/docs", include_in_schema=False, openapi_extra=public)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "") or base
        return _confined(
            get_swagger_ui_html(
                openapi_url=root + openapi_url,
                title=f"{title} - Swagger UI",
                swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
                swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
                oauth2_redirect_url=None,
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    @docs.get("/redoc", include_in_schema=False, openapi_extra=public)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "") or base
        return _confined(
            get_redoc_html(
                openapi_url=root + openapi_url,
                title=f"{title} - ReDoc",
                redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
                with_google_fonts=False,
            )
        )

    @docs.get(ASSETS_URL + "/{name}", include_in_schema=False, openapi_extra=public)
    def asset(name: str) -> FileResponse:
        if name not in ASSETS:
            raise ProblemError(404, f"no asset {name[:100]!r}")
        path = assets_dir() / name
        return FileResponse(path, media_type=_MEDIA[path.suffix], headers={"Cache-Control": _CACHE})

    return docs


def _confined(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CSP
    return page
