"""How the ``tidal`` command reports a failure, and how a signal stops it.

A failure is one line on stderr (``error: what is wrong — how to fix it``); with ``--json`` it is also a
JSON object on stdout, ``{"error": ..., "hint": ...}``, so a script that parses stdout meets an object
instead of nothing. The exit code says which kind of failure it was (:mod:`tidal.cli.exits`).
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from rich.console import Console
from rich.markup import escape

from tidal.cli import exits
from tidal.core.errors import GateFailed, TidalError


def exit_code_for(exc: TidalError) -> int:
    """A model that failed its gate is not a mistake of the user: it has its own code."""
    return exits.GATE_FAILED if isinstance(exc, GateFailed) else exits.MISTAKE


def report_failure(err: Console, message: str, hint: str | None, *, json_mode: bool,
                   document: dict[str, Any] | None = None) -> None:
    """Print ``message — hint`` as one line on stderr and, with ``json_mode``, ``{"error", "hint"}`` (added
    to ``document`` when the command has a result to give as well) as one JSON line on stdout."""
    line = f"{message} — {hint}" if hint else message
    err.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    if json_mode:
        sys.stdout.write(json.dumps({**(document or {}), "error": message, "hint": hint}, default=str) + "\n")
        sys.stdout.flush()


class Terminated(BaseException):
    """Raised in the main thread when a stopping signal (SIGTERM, SIGHUP) arrives inside
    :func:`signals_as_interrupts`, so that ``finally`` blocks run as they do for Ctrl-C. A BaseException,
    like KeyboardInterrupt, so that no ``except Exception`` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def signals_as_interrupts(*signums: int) -> Iterator[None]:
    """Within the block, the first of ``signums`` raises :class:`Terminated`; later ones are ignored, so
    that the cleanup they started (stopping a child process, say) is not cut short. Python's default for
    SIGTERM ends the process without running ``finally`` blocks, leaving children behind."""

    def stop(signum: int, frame: FrameType | None) -> None:
        for s in signums:
            signal.signal(s, signal.SIG_IGN)
        raise Terminated(signum)

    previous = {s: signal.signal(s, stop) for s in signums}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


__all__ = ["Terminated", "exit_code_for", "report_failure", "signals_as_interrupts"]
