"""The web face of tidal: the management API (``/api/v1``) with its tokens, roles and sessions, served by
``tidal ui`` (and beside the model by ``tidal serve --ui``). See docs/api.md.

It calls only :class:`tidal.Workspace`, as the CLI does, and shapes answers with the same functions
(:mod:`tidal.workspace.shapes`), so the API, the CLI and the SDK give the same answers.
"""

from __future__ import annotations

from tidal.ui.app import create_api
from tidal.ui.server import run_ui

__all__ = ["create_api", "run_ui"]
