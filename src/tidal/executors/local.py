"""The local executor: steps and trials run in this process, one after another."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class LocalExecutor:
    """Runs everything in the calling process (the default; ``TIDAL_EXECUTOR=local``)."""

    name = "local"

    def run(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        return fn(*args, **kwargs)

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        return [fn(item) for item in items]
