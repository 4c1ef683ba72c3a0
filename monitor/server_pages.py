"""The pages `monitor serve` shows a browser: `/` (where to go), `/docs` (Swagger UI), `/redoc`.

Everything they load comes from this server: the Swagger UI and ReDoc files are those the
`fastapi-offline` package installs, served under /assets/docs, so the documentation renders
on a machine without internet. A Content-Security-Policy forbids anything from elsewhere.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote, urlencode

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from monitor import __version__
from monitor.db import browse
from monitor.templating import environment
from monitor.wording import plural

if TYPE_CHECKING:
    from monitor.service import MonitorService

ASSETS = "/assets/docs"
# Script and style inline (Swagger UI's and ReDoc's bootstrap), everything else from here only;
# ReDoc runs its search in a worker made from a blob.
PAGE_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def docs_assets() -> Path:
    """The folder of the installed Swagger UI and ReDoc files."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


# ReDoc's footer shows Redocly's logo from their CDN; an empty local image stands in for it.
_REDOC_REMOTE_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
_EMPTY_SVG = "data:image/svg+xml,%3Csvg xmlns=%27http://www.w3.org/2000/svg%27/%3E"


@lru_cache(maxsize=1)
def redoc_script() -> bytes:
    """ReDoc's bundle as installed, its one remote image replaced by a local one."""
    text = (docs_assets() / "redoc.standalone.js").read_text(encoding="utf-8")
    return text.replace(_REDOC_REMOTE_LOGO, _EMPTY_SVG).encode("utf-8")


def add_pages(app: FastAPI, svc: MonitorService, *, token_required: bool) -> None:
    """Mount the documentation assets and add `/`, `/docs` and `/redoc` to `app` (out of the schema)."""

    @app.get(f"{ASSETS}/redoc.standalone.js", include_in_schema=False)    # before the mount, which it overrides
    def redoc_js() -> Response:
        return Response(redoc_script(), media_type="text/javascript; charset=utf-8",
                        headers={"Cache-Control": "public, max-age=86400"})

    app.mount(ASSETS, StaticFiles(directory=docs_assets()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(openapi_url=openapi_url, title=f"{app.title} API - Swagger UI",
                                   swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS}/favicon.png",
                                   # no badge from the public validator service
                                   swagger_ui_parameters={"validatorUrl": None})
        return _with_policy(page)

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        page = get_redoc_html(openapi_url=openapi_url, title=f"{app.title} API - ReDoc",
                              redoc_js_url=f"{ASSETS}/redoc.standalone.js",
                              redoc_favicon_url=f"{ASSETS}/favicon.png", with_google_fonts=False)
        return _with_policy(page)

    @app.get("/", include_in_schema=False)
    def index() -> HTMLResponse:
        stories = None if token_required else _stories(svc)
        return _with_policy(HTMLResponse(index_page(stories)))


def _with_policy(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = PAGE_CSP
    return page


def _stories(svc: MonitorService) -> list[tuple[Any, int]]:
    counts = browse.match_counts(svc.store)
    return [(s, counts.get(s.id, 0)) for s in svc.stories]


class _StoryLine(NamedTuple):
    id: str
    title: str
    enabled: bool
    matches: int
    path: str               # the id as one path segment
    digest_query: str


def index_page(stories: list[tuple[Any, int]] | None) -> str:
    """The front page: the API's documentation and, unless the API needs a token, the stories.
    Every text from configuration or plugins is escaped (the template autoescapes)."""
    lines = None if stories is None else [
        _StoryLine(story.id, story.title or story.id, story.enabled, count, quote(story.id, safe=""),
                   urlencode({"story": story.id, "format": "html"}))
        for story, count in stories]
    return _templates.get_template("front.html").render(stories=lines, version=__version__, plural=plural)


_templates = environment("monitor.web")
