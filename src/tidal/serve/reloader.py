"""The reloader: follows the ``champion`` alias and swaps the model in the background.

A daemon thread asks the registry every ``deploy.reload_seconds`` which version ``champion`` points at.
When it moved (``tidal promote``, an automatic promotion, ``tidal rollback``), the thread loads that
version, checks it answers (:func:`~tidal.serve.predictor.build_predictor`), and only then swaps it in
with one reference assignment (:meth:`~tidal.serve.state.Slot.swap`). Requests keep being answered by
the previous version during the load and never wait for it. A version that fails to load or to answer
is not served: the previous one keeps serving, the failure is logged once, and the same version is
tried again only after :data:`RETRY_SECONDS`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from tidal.core.clock import SystemClock
from tidal.core.ports import Clock
from tidal.registry import CHAMPION
from tidal.serve.state import ServingState, Slot, load_state
from tidal.serve.threads import cap_threads

#: How long a version that failed to load waits before it is tried again.
RETRY_SECONDS = 30.0

logger = logging.getLogger("tidal.serve")


class Reloader:
    """Keeps ``slot`` on the version the ``champion`` alias of model ``name`` points at."""

    def __init__(self, registry: Any, name: str, slot: Slot, *, interval: float, clock: Clock | None = None,
                 on_swap: Callable[[ServingState], None] | None = None, fast: bool = True) -> None:
        self.registry = registry
        self.name = name
        self.slot = slot
        self.interval = interval
        self.clock = clock or SystemClock()
        self.on_swap = on_swap
        self.fast = fast
        self._stop = threading.Event()
        #: Set once the first poll has finished (a model loaded, or the reason there is none logged).
        self.first_check = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed: dict[tuple[int, str], float] = {}
        self._last_problem = ""

    def start(self) -> None:
        """Load the champion and follow it, in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="tidal-reloader", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        cap_threads()  # OpenMP's limit is per thread: this one loads and checks models
        while not self._stop.is_set():
            try:
                self.check()
            except Exception as exc:  # the registry may be briefly unavailable: try again next tick
                self._problem(f"could not read the champion of {self.name!r}: {type(exc).__name__}: {exc}")
            self.first_check.set()
            self._stop.wait(self.interval)

    def check(self) -> bool:
        """One poll: swap in the champion if it moved; returns whether a swap happened."""
        # Only the alias is read on every poll (0.1 ms); the version itself (its profile is large JSON: 4 ms
        # to read, holding the GIL) only when the alias moved.
        alias = self.registry.store.get_alias(self.name, CHAMPION)
        current = self.slot.current
        if alias is None:
            if current is None:
                self.slot.status = f"no model to serve: {self.name!r} has no champion yet (run `tidal run`)"
                self._problem(self.slot.status, level=logging.WARNING)
            return False
        if current is not None and current.version == alias.version:
            return False
        mv = self.registry.get(self.name, alias.version)
        key = (mv.version, mv.artifact_digest)
        failed_at = self._failed.get(key)
        if failed_at is not None and time.monotonic() - failed_at < RETRY_SECONDS:
            return False
        label = f"{mv.name}:{mv.version}"
        if current is None:
            self.slot.status = f"loading {label}"
        start = time.perf_counter()
        try:
            state = load_state(self.registry, mv, now=self.clock.now(), fast=self.fast)
        except Exception as exc:
            self._failed[key] = time.monotonic()
            still = f"; still serving {current.label}" if current is not None else ""
            if current is None:
                self.slot.status = f"{label} could not be loaded: {type(exc).__name__}: {exc}"
            logger.error("champion %s is not served: %s: %s%s (tried again in %.0f s)", label,
                         type(exc).__name__, exc, still, RETRY_SECONDS)
            return False
        self._failed.pop(key, None)
        previous = self.slot.swap(state)
        seconds = time.perf_counter() - start
        logger.info("serving %s%s: loaded and checked in %.2f s, %s path (%s); nullable columns: %s", label,
                    f" (was {previous.label})" if previous is not None else "", seconds,
                    state.report.get("path"), state.report.get("fast_path"),
                    ", ".join(state.report.get("nullable", [])) or "none")
        self._last_problem = ""
        if self.on_swap is not None:
            self.on_swap(state)
        return True

    def _problem(self, message: str, level: int = logging.ERROR) -> None:
        if message != self._last_problem:  # say it once, not once a second
            logger.log(level, "%s", message)
            self._last_problem = message


__all__ = ["RETRY_SECONDS", "Reloader"]
