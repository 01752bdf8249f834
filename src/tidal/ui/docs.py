"""Swagger UI and ReDoc from files inside the installation: no CDN, so the API's documentation opens on a
machine without internet. The assets are those the ``fastapi-offline`` package ships (Swagger UI's bundle
and CSS, ReDoc's standalone script, FastAPI's favicon), served under ``/api/static``."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

STATIC = "/api/static"
#: The files served, with their media types.
ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
          "redoc.standalone.js": "text/javascript", "favicon.png": "image/png"}


def _asset(name: str) -> bytes:
    return (resources.files("fastapi_offline") / "static" / name).read_bytes()


def add_docs(app: FastAPI, *, openapi_url: str = "/api/v1/openapi.json", title: str = "tidal API") -> None:
    """``/api/docs`` (Swagger UI), ``/api/redoc`` (ReDoc) and their assets on ``app``."""
    cache: dict[str, bytes] = {}

    @app.get(f"{STATIC}/{{name}}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in ASSETS:
            raise HTTPException(404, "no such asset")
        if name not in cache:
            cache[name] = _asset(name)
        return Response(cache[name], media_type=ASSETS[name], headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/api/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=openapi_url, title=f"{title} · Swagger UI",
                                   swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{STATIC}/swagger-ui.css",
                                   swagger_favicon_url=f"{STATIC}/favicon.png")

    @app.get("/api/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi_url, title=f"{title} · ReDoc",
                              redoc_js_url=f"{STATIC}/redoc.standalone.js",
                              redoc_favicon_url=f"{STATIC}/favicon.png", with_google_fonts=False)


__all__ = ["ASSETS", "STATIC", "add_docs"]
