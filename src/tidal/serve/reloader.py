"""The reloader: follows the ``champion`` alias (and, in a trial, ``challenger``) and swaps models in the
background.

A daemon thread asks the registry every ``deploy.reload_seconds`` which version ``champion`` points at.
When it moved (``tidal promote``, an automatic promotion, ``tidal rollback``), the thread loads that
version, checks it answers (:func:`~tidal.predict.predictor.build_predictor`), and only then swaps it in
with one reference assignment (:meth:`~tidal.predict.state.Slot.swap`). Requests keep being answered by
the previous version during the load and never wait for it. A version that fails to load or to answer
is not served: the previous one keeps serving, the failure is logged once, and the same version is
tried again only after :data:`RETRY_SECONDS`. The reason shown to clients (``/readyz``, 503 answers,
``/model``'s ``challenger_status``) leaves out filesystem paths and URLs; the log line has them.

With ``deploy.strategy`` canary or shadow (``trial_kind``), the same poll follows the ``challenger``
alias too, after the champion: a challenger is loaded and checked the same way and put beside the
champion (:meth:`~tidal.predict.state.Slot.set_trial`). The trial ends as soon as the alias is deleted,
moves, or points at the champion's version; when the champion moves to the challenger's version (the
trial was won), the already loaded challenger becomes the champion without a second load (also when
a poll saw the trial end a moment before the champion moved: the loop deletes the alias first). Everything
about the challenger is guarded on its own: a challenger that cannot be read, loaded or checked is
logged and not served, and the champion serves every request as before. With strategy ``direct`` the
challenger alias is never read (there it only names a candidate for ``tidal promote``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from tidal.core.clock import SystemClock
from tidal.core.ports import Clock
from tidal.predict.state import ServingState, Slot, Trial, load_state
from tidal.registry import CHALLENGER, CHAMPION
from tidal.serve.errors import public_message
from tidal.serve.threads import cap_threads

#: How long a version that failed to load waits before it is tried again.
RETRY_SECONDS = 30.0

logger = logging.getLogger("tidal.serve")


#: How long a challenger whose trial just ended stays loaded, in case the champion moves to it next: the
#: loop deletes the challenger alias before it moves the champion, and a poll may fall between the two.
KEEP_ENDED_SECONDS = 60.0

#: The strategies under which the server runs the challenger beside the champion.
TRIAL_KINDS = ("canary", "shadow")


class Reloader:
    """Keeps ``slot`` on the version the ``champion`` alias of model ``name`` points at, and, when
    ``trial_kind`` is ``canary`` or ``shadow``, its trial on the version ``challenger`` points at.

    ``on_swap`` is called after each champion swap, ``on_trial`` after each start or end of a trial (with
    None); both in the reloader's thread.
    """

    def __init__(self, registry: Any, name: str, slot: Slot, *, interval: float, clock: Clock | None = None,
                 on_swap: Callable[[ServingState], None] | None = None, fast: bool = True,
                 trial_kind: str | None = None, percent: float = 0.0,
                 on_trial: Callable[[Trial | None], None] | None = None, runtime: str = "native",
                 tolerance: float = 1e-5) -> None:
        if trial_kind is not None and trial_kind not in TRIAL_KINDS:
            raise ValueError(f"trial_kind must be one of {', '.join(TRIAL_KINDS)} or None, not {trial_kind!r}")
        self.registry = registry
        self.name = name
        self.slot = slot
        self.interval = interval
        self.clock = clock or SystemClock()
        self.on_swap = on_swap
        self.fast = fast
        self.runtime, self.tolerance = runtime, tolerance  # deploy.runtime, deploy.onnx_tolerance
        self.trial_kind = trial_kind
        self.percent = percent
        self.on_trial = on_trial
        slot.trial_status = ("none yet" if trial_kind else
                             "ignored: deploy.strategy is direct (the challenger alias only names a candidate)")
        self._stop = threading.Event()
        #: Set once the first poll has finished (a model loaded, or the reason there is none logged).
        self.first_check = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed: dict[tuple[int, str], float] = {}
        self._ended: tuple[ServingState, float] | None = None  # the last trial's challenger, and when it ended
        self._last_problem: dict[str, str] = {}

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
        """One poll: swap in the champion if it moved, then follow the challenger (in a trial strategy);
        returns whether the champion was swapped."""
        swapped = self.check_champion()
        if self.trial_kind is not None:
            try:
                self.check_challenger()
            except Exception as exc:  # nothing about the challenger may stop the champion's polls
                self._problem(f"could not follow the challenger of {self.name!r}: {type(exc).__name__}: {exc}",
                              key="challenger")
        return swapped

    def check_champion(self) -> bool:
        """Swap in the champion if it moved; returns whether a swap happened."""
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
        ready = self._loaded_challenger(mv)
        if ready is not None:
            # the challenger won its trial: it is loaded and checked already, so it serves at once
            self._swapped(ready, 0.0, note=f"; the {self.trial_kind} challenger, loaded already")
            return True
        key = (mv.version, mv.artifact_digest)
        failed_at = self._failed.get(key)
        if failed_at is not None and time.monotonic() - failed_at < RETRY_SECONDS:
            return False
        label = f"{mv.name}:{mv.version}"
        if current is None:
            self.slot.status = f"loading {label}"
        start = time.perf_counter()
        try:
            state = load_state(self.registry, mv, now=self.clock.now(), fast=self.fast, runtime=self.runtime,
                                   tolerance=self.tolerance)
        except Exception as exc:
            self._failed[key] = time.monotonic()
            still = f"; still serving {current.label}" if current is not None else ""
            if current is None:
                # answered by /readyz and every 503: what failed and the hint, without paths (the log has them)
                self.slot.status = f"{label} could not be loaded: {public_message(exc)}"
            logger.error("champion %s is not served: %s: %s%s (tried again in %.0f s)", label,
                         type(exc).__name__, exc, still, RETRY_SECONDS)
            return False
        self._failed.pop(key, None)
        self._swapped(state, time.perf_counter() - start)
        return True

    def _loaded_challenger(self, mv: Any) -> ServingState | None:
        """The challenger's loaded state when it is ``mv`` (in its trial, or ended moments ago)."""
        trial = self.slot.trial
        candidates = [trial.state] if trial is not None else []
        if self._ended is not None and time.monotonic() - self._ended[1] < KEEP_ENDED_SECONDS:
            candidates.append(self._ended[0])
        return next((c for c in candidates
                     if c.version == mv.version and c.mv.artifact_digest == mv.artifact_digest), None)

    def _swapped(self, state: ServingState, seconds: float, note: str = "") -> None:
        trial_before = self.slot.trial
        previous = self.slot.swap(state)
        logger.info("serving %s%s: loaded and checked in %.2f s, %s path (%s); nullable columns: %s", state.label,
                    f" (was {previous.label}{note})" if previous is not None else "", seconds,
                    state.report.get("path"), state.report.get("fast_path"),
                    ", ".join(state.report.get("nullable", [])) or "none")
        self._last_problem.pop("champion", None)
        self._ended = None  # the champion moved: an ended challenger is of no more use
        if self.on_swap is not None:
            self.on_swap(state)
        if trial_before is not None and self.slot.trial is None:
            logger.info("%s trial of %s ended: it is the champion now", trial_before.kind, trial_before.state.label)
            if self.on_trial is not None:
                self.on_trial(None)

    def check_challenger(self) -> bool:
        """Start, keep or end the challenger's trial; returns whether it changed. Call after the champion's
        check: a trial needs a champion, and a version that became champion is no challenger."""
        champion = self.slot.current
        trial = self.slot.trial
        alias = self.registry.store.get_alias(self.name, CHALLENGER)
        if self._ended is not None and time.monotonic() - self._ended[1] >= KEEP_ENDED_SECONDS:
            self._ended = None  # not promoted after all: free its memory
        if champion is None or alias is None or alias.version == champion.version:
            why = ("no champion is loaded" if champion is None else
                   f"{self.name!r} has no challenger alias" if alias is None else
                   f"the challenger is the champion ({champion.label})")
            if trial is not None:
                self._end_trial(f"none: {why}")
                return True
            self.slot.trial_status = f"none: {why}"
            return False
        if trial is not None and trial.version == alias.version:
            return False
        if trial is not None:  # the alias moved to another version: the old one is no challenger any more
            self._end_trial(f"none: the challenger alias moved to version {alias.version}")
        mv = self.registry.get(self.name, alias.version)
        key = (mv.version, mv.artifact_digest)
        failed_at = self._failed.get(key)
        if failed_at is not None and time.monotonic() - failed_at < RETRY_SECONDS:
            return trial is not None
        label = f"{mv.name}:{mv.version}"
        self.slot.trial_status = f"loading {label}"
        start = time.perf_counter()
        try:
            ended = self._ended[0] if self._ended is not None else None
            if ended is not None and (ended.version, ended.mv.artifact_digest) == key:
                state = ended  # the alias came back to the challenger that just ended: loaded already
            else:
                state = load_state(self.registry, mv, now=self.clock.now(), fast=self.fast, runtime=self.runtime,
                                   tolerance=self.tolerance)
        except Exception as exc:
            self._failed[key] = time.monotonic()
            self.slot.trial_status = f"{label} could not be loaded: {public_message(exc)}"
            logger.error("challenger %s is not served (the champion %s answers every request): %s: %s (tried "
                         "again in %.0f s)", label, champion.label, type(exc).__name__, exc, RETRY_SECONDS)
            return trial is not None
        self._failed.pop(key, None)
        self._ended = None
        new = Trial(state=state, kind=str(self.trial_kind), percent=self.percent if self.trial_kind == "canary" else 0)
        self.slot.set_trial(new, f"serving {new.describe()}")
        self._last_problem.pop("challenger", None)
        logger.info("challenger %s beside champion %s: loaded and checked in %.2f s, %s path", new.describe(),
                    champion.label, time.perf_counter() - start, state.report.get("path"))
        if self.on_trial is not None:
            self.on_trial(new)
        return True

    def _end_trial(self, status: str) -> None:
        ended = self.slot.set_trial(None, status)
        if ended is not None:
            self._ended = (ended.state, time.monotonic())
            logger.info("%s trial of %s ended (%s)", ended.kind, ended.state.label, status.removeprefix("none: "))
            if self.on_trial is not None:
                self.on_trial(None)

    def _problem(self, message: str, level: int = logging.ERROR, key: str = "champion") -> None:
        if message != self._last_problem.get(key):  # say it once, not once a second
            logger.log(level, "%s", message)
            self._last_problem[key] = message


__all__ = ["KEEP_ENDED_SECONDS", "RETRY_SECONDS", "TRIAL_KINDS", "Reloader"]
