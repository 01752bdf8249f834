"""The local executor: steps run in this process, one after another."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from tidal.core.ports import Task

R = TypeVar("R")


class LocalTask(Generic[R]):
    """A call that runs in this process when its result is first asked for, so that code written for a
    parallel executor (submit several, then collect) runs here in the order it collects, as before."""

    where: dict[str, Any] | None = None

    def __init__(self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._call: tuple[Callable[..., R], tuple[Any, ...], dict[str, Any]] | None = (fn, args, kwargs)
        self._value: R | None = None
        self._error: BaseException | None = None

    def result(self) -> R:
        if self._call is not None:
            fn, args, kwargs = self._call
            self._call = None  # run once, even if it raises
            try:
                self._value = fn(*args, **kwargs)
            except BaseException as exc:
                self._error = exc
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set by the call above

    def done(self) -> bool:
        return self._call is None


class LocalExecutor:
    """Runs everything in the calling process (the default; ``TIDAL_EXECUTOR=local``)."""

    name = "local"
    slots = 1

    def run(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        return fn(*args, **kwargs)

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> LocalTask[R]:
        return LocalTask(fn, args, kwargs)

    def wait(self, tasks: Sequence[Task[Any]]) -> list[Task[Any]]:
        finished = [t for t in tasks if t.done()]
        if not finished and tasks:
            first = tasks[0]
            with contextlib.suppress(Exception):  # kept in the task: its result() raises it to whoever collects it
                first.result()
            finished = [first]
        return finished

    def close(self) -> None:
        return None
