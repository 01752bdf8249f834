"""Progress of a long piece of work (a network's epochs), reported to whoever shows it.

The training loop calls :func:`report` after each epoch; ``tidal run`` listens (:func:`listening`) and draws
a progress bar under its step line. Nobody listening (the SDK, a test, the loop controller) costs a lookup.
The listener is a context variable: it follows the code that set it, not a global another thread would see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: (what, done, total): e.g. ("epoch", 3, 20) after the third of twenty epochs.
Listener = Callable[[str, int, int], None]

_LISTENER: ContextVar[Listener | None] = ContextVar("tidal_progress", default=None)


@contextmanager
def listening(listener: Listener | None) -> Iterator[None]:
    """Within the block, :func:`report` calls ``listener`` (None: nobody listens)."""
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)


def report(what: str, done: int, total: int) -> None:
    """``done`` of ``total`` ``what`` are finished; a listener that fails does not stop the work."""
    listener = _LISTENER.get()
    if listener is None:
        return
    try:
        listener(what, done, total)
    except Exception:  # showing progress must never break training
        return


def listened() -> bool:
    """Whether anybody listens here (an executor forwards the progress of a remote step only then)."""
    return _LISTENER.get() is not None


__all__ = ["Listener", "listened", "listening", "report"]
