"""Executors: where steps run. ``local`` by default; ``ray`` (a local Ray started on demand) or
``ray://host:port`` (an existing cluster) with the ``ray`` extra (:mod:`tidal.executors.ray`)."""

from __future__ import annotations

from tidal.core.errors import PluginNotFound
from tidal.core.ports import Executor
from tidal.executors.local import LocalExecutor

#: The executors ``storage.executor`` / ``TIDAL_EXECUTOR`` may name.
KNOWN = ("local", "ray", "ray://host:port")


def open_executor(spec: str) -> Executor:
    """The executor named by ``TIDAL_EXECUTOR`` / ``storage.executor``; nothing starts until a step runs."""
    if spec in ("", "local"):
        return LocalExecutor()
    if spec == "ray" or spec.startswith("ray://"):
        from tidal.executors.ray import RayExecutor

        return RayExecutor(None if spec == "ray" else spec)
    raise PluginNotFound("executor", spec.split("://")[0], KNOWN)


__all__ = ["KNOWN", "LocalExecutor", "open_executor"]
