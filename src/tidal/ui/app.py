"""The management API's ASGI app (``tidal ui``; ``tidal serve --ui`` puts it beside the serving routes).

Errors are JSON ``{"error": "...", "hint": "..."}`` with the status of their kind: 401 (no or bad
credentials, with ``WWW-Authenticate: Bearer``), 403 (a role or CSRF refused), 404 (no such run, model,
version, report, token), 409 (an alias move the registry refuses, e.g. promoting a rejected version), 422
(a request that does not match its schema), 400 (any other mistake tidal names), 503 (the store failed).
Never a traceback, never the credentials that were sent.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tidal.core.errors import (
    AliasConflict,
    Forbidden,
    NotFound,
    StorageError,
    TidalError,
    Unauthenticated,
)
from tidal.ui.api import build_router
from tidal.ui.auth import Authenticator
from tidal.ui.dashboard import add_dashboard
from tidal.ui.docs import add_docs
from tidal.workspace import Workspace

logger = logging.getLogger("tidal.ui")
OPENAPI_URL = "/api/v1/openapi.json"


def status_of(exc: TidalError) -> int:
    """The HTTP status of an error tidal raised while answering."""
    for kind, status in ((Unauthenticated, 401), (Forbidden, 403), (NotFound, 404), (AliasConflict, 409),
                         (StorageError, 503)):
        if isinstance(exc, kind):
            return status
    return 400


def _body(message: str, hint: str | None = None) -> dict[str, Any]:
    return {"error": message, **({"hint": hint} if hint else {})}


def create_api(ws: Workspace, *, auth: bool = True, authenticator: Authenticator | None = None) -> FastAPI:
    """The management API over ``ws`` (which the caller keeps open while the app serves, and closes).
    ``auth=False`` (``tidal ui --no-auth``) lets every request act as an admin named anonymous."""
    app = FastAPI(title="tidal management API", version="1", openapi_url=OPENAPI_URL, docs_url=None,
                  redoc_url=None, description=(
                      "The runs, models, monitoring reports and loop of one tidal project, as `tidal ... --json` "
                      "shows them. Authenticate with `Authorization: Bearer <token>` (`tidal tokens create`), "
                      "or sign in with POST /api/v1/session (a session cookie; then send X-CSRF-Token on every "
                      "action). Roles: viewer reads; operator also promotes, rolls back and steers the loop; "
                      "admin also manages tokens."))
    checker = authenticator or Authenticator(ws, enabled=auth)
    app.state.workspace = ws
    app.state.auth = checker

    @app.exception_handler(TidalError)
    def tidal_error(request: Request, exc: TidalError) -> JSONResponse:
        status = status_of(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if status >= 500:
            logger.warning("%s %s: %s", request.method, request.url.path, exc.message)
        return JSONResponse(_body(exc.message, exc.hint), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse(_body(f"{where or 'request'}: {first.get('msg', 'invalid')}",
                                  "see the API's schema at /api/docs"), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "refused"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no endpoint at {request.url.path} (see /api/docs)"
        return JSONResponse(_body(message), status_code=exc.status_code)

    @app.exception_handler(Exception)
    def internal(request: Request, exc: Exception) -> JSONResponse:
        # a bug in tidal: logged with its type only (its text may hold a request's values), never a traceback
        logger.error("internal error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        return JSONResponse(_body("internal error", "see the server's log"), status_code=500)

    app.include_router(build_router(ws, checker))
    add_docs(app, openapi_url=OPENAPI_URL)
    add_dashboard(app)
    return app


__all__ = ["OPENAPI_URL", "create_api", "status_of"]
