"""tidal.serve: the model server.

- :func:`create_app` (``root, **overrides``) builds the ASGI app of a project: ``POST /predict``,
  ``POST /feedback``, ``GET /healthz``, ``/readyz``, ``/metrics``, ``/model``, docs at ``/docs``.
- :func:`run_server` (``root, *, host, port, workers``) runs it with uvicorn (``tidal serve``).

Only this package imports FastAPI, Starlette and uvicorn; importing it loads FastAPI
but not the model stack, which loads with the workspace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tidal.serve.app import TidalApp, create_app
    from tidal.serve.server import run_server


def __getattr__(name: str) -> Any:
    # Imported on first use: `tidal serve --help` and the SDK do not pay for FastAPI and uvicorn.
    if name in ("create_app", "TidalApp"):
        from tidal.serve import app

        return getattr(app, name)
    if name == "run_server":
        from tidal.serve.server import run_server

        return run_server
    raise AttributeError(f"module 'tidal.serve' has no attribute {name!r}")


__all__ = ["TidalApp", "create_app", "run_server"]
