"""Executors: where steps run. ``local`` by default; ``ray://address`` once the Ray adapter lands."""

from __future__ import annotations

from tidal.core.errors import PluginNotFound
from tidal.core.ports import Executor
from tidal.executors.local import LocalExecutor


def open_executor(spec: str) -> Executor:
    """The executor named by ``TIDAL_EXECUTOR`` / ``storage.executor``."""
    if spec in ("", "local"):
        return LocalExecutor()
    raise PluginNotFound("executor", spec.split("://")[0], ["local"])


__all__ = ["LocalExecutor", "open_executor"]
