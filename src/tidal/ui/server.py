"""Running the management API: ``tidal ui``, and ``tidal serve --ui`` (the API beside the model, one process).

Safe by default: the server listens on 127.0.0.1 unless told otherwise, and refuses to start while the
workspace has no usable token (create an admin one first: ``tidal tokens create --role admin --name me``).
``--no-auth`` lets every request act as an admin named ``anonymous``; it is refused on an address other
than loopback. Nothing logs a request's headers: uvicorn's access log holds the method, path and status,
and the API takes no credential in a URL.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from tidal.core.errors import TidalError
from tidal.serve.server import check_port, exposure_warning, log_config
from tidal.workspace import Workspace

logger = logging.getLogger("tidal.ui")
Scope = MutableMapping[str, Any]
ASGI = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_startup(ws: Workspace, host: str, no_auth: bool) -> None:
    """Refuse what would be unsafe: no token to sign in with (unless ``no_auth``), ``no_auth`` off loopback."""
    if no_auth:
        if not is_loopback(host):
            raise TidalError(f"--no-auth is refused on {host}: anyone who reaches it would act as an admin",
                             hint="listen on 127.0.0.1, or create a token and drop --no-auth")
        return
    now = ws.clock.now()
    if not any(t.active(now) and t.role != "none" for t in ws.tokens.list()):
        raise TidalError("no API token exists, so nobody could sign in",
                         hint="create one: tidal tokens create --role admin --name NAME (or, on this machine "
                              "only, start with --no-auth)")


class Mounted:
    """``/api/...``, the dashboard (``/`` and ``/ui...``) to the management API, every other path (and the
    lifespan) to the model server."""

    def __init__(self, api: ASGI, model: ASGI) -> None:
        self.api, self.model = api, model

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] == "http" and (path.startswith(("/api/", "/ui/")) or path in ("/", "/ui")):
            await self.api(scope, receive, send)
        else:
            await self.model(scope, receive, send)


def run_ui(root: Path, *, host: str = "127.0.0.1", port: int = 8800, no_auth: bool = False,
           with_model: bool = False) -> None:
    """Serve the management API of the project at ``root`` until interrupted; ``with_model``: also serve
    its champion (``/predict``, ``/feedback``...) in the same process, as ``tidal serve`` does."""
    import logging.config

    import uvicorn

    from tidal.ui.app import create_api

    ws = Workspace.open(root)
    try:
        check_startup(ws, host, no_auth)
        check_port(host, port)
        logging.config.dictConfig(log_config())
        warning = exposure_warning(host)
        if warning is not None:
            logger.warning("the management API listens on %s: every request needs a token, but use HTTPS (a "
                           "proxy) so that tokens do not cross the network in clear", host)
        logger.info("tidal ui: the dashboard of %r on http://%s:%d/ (the API at /api/v1, its docs at /api/docs)%s",
                    ws.spec.name, host, port, ", every request acting as anonymous (--no-auth)" if no_auth else "")
        app: Any = create_api(ws, auth=not no_auth)
        if with_model:
            from tidal.serve.app import create_app

            app = Mounted(app, create_app(Path(root)))
        uvicorn.run(app, host=host, port=port, log_config=log_config(), proxy_headers=False, server_header=False,
                    ws="none", lifespan="on" if with_model else "off")
    finally:
        ws.close()


__all__ = ["Mounted", "check_startup", "is_loopback", "run_ui"]
