"""`/docs` (Swagger UI) and `/redoc` from assets shipped in the package (hub/web/static/, see
its README.md for versions and licences), so the docs load on a host without internet.
FastAPI's own docs routes load them from a CDN; they are turned off in hub/web/app.py."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
PREFIX = "/static"
SWAGGER_JS = f"{PREFIX}/swagger-ui/swagger-ui-bundle.js"
SWAGGER_CSS = f"{PREFIX}/swagger-ui/swagger-ui.css"
REDOC_JS = f"{PREFIX}/redoc/redoc.standalone.js"
FAVICON = f"{PREFIX}/favicon.png"


def mount(app: FastAPI) -> None:
    """Serve the assets and the two pages; both pages read `app.openapi_url`."""
    app.mount(PREFIX, StaticFiles(directory=STATIC), name="static")
    app.include_router(router(app.title, app.openapi_url or "/openapi.json"))


def router(title: str, openapi_url: str) -> APIRouter:
    api = APIRouter(include_in_schema=False)

    @api.get("/docs")
    def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=root + SWAGGER_JS,
            swagger_css_url=root + SWAGGER_CSS,
            swagger_favicon_url=root + FAVICON,
            # No badge that sends the document to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @api.get("/redoc")
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=root + REDOC_JS,
            redoc_favicon_url=root + FAVICON,
            with_google_fonts=False,
        )

    return api
