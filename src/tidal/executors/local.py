"""The local executor: steps run in this process, one after another."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

R = TypeVar("R")


class LocalExecutor:
    """Runs everything in the calling process (the default; ``TIDAL_EXECUTOR=local``)."""

    name = "local"

    def run(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        return fn(*args, **kwargs)
