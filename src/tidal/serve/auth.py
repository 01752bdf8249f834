"""``deploy.auth``: the serving endpoints that need a token with their scope (``predict``, ``feedback``).

A request to a protected route must carry ``Authorization: Bearer tidal_<id>_<secret>`` of a token that is
neither revoked nor expired and has the route's scope (an admin token has every scope). The token is read
from the metadata store by its id on every request (one primary-key read: about 50 µs on SQLite), with no
cache, so a token revoked by ``tidal tokens revoke`` in any process is refused by the next request. With
``deploy.auth`` empty (the default) the guard does not exist, and the hot path pays nothing for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tidal.core.errors import Forbidden, Unauthenticated
from tidal.core.tokens import require_scope
from tidal.predict.errors import ApiError

if TYPE_CHECKING:
    from tidal.workspace import Workspace

#: The scope each protected route needs.
ROUTE_SCOPES = {"/predict": "predict", "/invocations": "predict", "/v2/infer": "predict", "/feedback": "feedback"}


class ScopeGuard:
    """Checks the bearer token of a request to a route whose scope is in ``scopes``."""

    def __init__(self, ws: Workspace, scopes: list[str]) -> None:
        self.ws = ws
        self.routes = {route: scope for route, scope in ROUTE_SCOPES.items() if scope in scopes}

    def check(self, route: str, headers: list[tuple[bytes, bytes]]) -> None:
        """Raise ApiError (401, 403) unless the request may use ``route``; the body is left unread."""
        scope = self.routes.get(route)
        if scope is None:
            return
        value = next((v for k, v in headers if k == b"authorization"), None)
        try:
            if value is None:
                raise Unauthenticated(f"{route} needs a token with the scope {scope} (deploy.auth)")
            kind, _, text = value.decode("latin-1").partition(" ")
            if kind.lower() != "bearer" or not text.strip():
                raise Unauthenticated("the Authorization header is not a bearer token")
            require_scope(self.ws.tokens.authenticate(text.strip()), scope)
        except Unauthenticated as exc:
            raise ApiError(401, exc.message, close=True) from None
        except Forbidden as exc:
            raise ApiError(403, exc.message, close=True) from None


__all__ = ["ROUTE_SCOPES", "ScopeGuard"]
