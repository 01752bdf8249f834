"""Canary and shadow trials in the server: which requests a canary answers, and a shadow's background work.

**Canary routing** (:class:`CanaryRouter`) is deterministic, not random: an accumulator (the rule of
Bresenham's line, or of smooth weighted round robin) adds ``percent`` to a credit on every request; a
request that brings the credit to 100 or more goes to the challenger, which takes 100 off. Over any N
consecutive requests of one process the challenger answers ⌊percent·N/100⌋ or ⌈percent·N/100⌉ of them,
spread evenly (at 20 %: every fifth), where a random draw strays by about √(N·p·(1-p)) requests (±5.7
in 200 at 20 %), which makes a small trial's share, and the tests of it, noisy. The credit restarts at
each new challenger version. The router runs on the event loop's thread only, so it needs no lock.
Each worker process routes its own requests: with W workers the total is within W requests of the
share.

**Shadow work** (:class:`ShadowRunner`) starts only once the champion's predictions are committed, and
the champion's answer never waits for it: the request hands the parsed body to a background task and
returns. That task runs after the answer is sent: it checks the rows against the challenger's own
signature and predicts (on the event loop up to ``inline_rows`` rows, as the champion does, since a
thread hand-off costs more than a small prediction; in the runner's own thread above that, never in
the pool of the champion's large requests). Each shadow answer has the id ``<champion prediction
id>.shadow``, ``served`` False and deployment ``shadow``; the controller pairs them with the champion's
labelled answers.

The shadow answers are stored in batches, every :data:`FLUSH_SECONDS` (sooner past
:data:`FLUSH_ROWS`), by the runner's own thread, in transactions of their own. Measured with one client
sending single-row requests back to back against the SQLite log, a commit of shadow rows per request
made the champion's p50 latency 1.25 → 1.95 ms (its next commit waited for the shadow's), while
predicting without storing cost nothing measurable; batched, the champion pays for one shadow commit
per batch instead (p50 1.09 to 1.32 ms without a shadow, 1.20 to 1.42 ms with one, three runs each on a busy
2-core machine). No shadow row ever shares a transaction with a champion's, so a shadow row that
cannot be stored never fails an answer; a batch that fails is stored request by request, so one bad
request's shadow rows lose only themselves. Shadow answers are not durable before anything (nothing
was answered from them): a stopping server flushes what is pending (:meth:`ShadowRunner.drain`), a
killed one loses at most the last batch.

A failure is counted and logged (at most once per :data:`LOG_EVERY_SECONDS`), never raised; when more
than :data:`MAX_PENDING_ROWS` rows wait for shadow work (the challenger is slower than the traffic),
new requests' shadow work is skipped and counted, so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tidal.core.batches import PredictionBatch, PredictionChain
from tidal.core.entities import Prediction
from tidal.core.ports import PredictionLog
from tidal.predict.errors import ApiError
from tidal.predict.records import make_records, predict_rows
from tidal.predict.state import ServingState, Trial
from tidal.serve.metrics import ServerMetrics
from tidal.serve.threads import cap_threads

logger = logging.getLogger("tidal.serve")

#: Rows whose shadow work may wait at once; more are skipped (``tidal_shadow_dropped_total``).
MAX_PENDING_ROWS = 20_000
#: Shadow answers are stored this often, in one transaction of their own...
FLUSH_SECONDS = 0.05
#: ...or as soon as this many rows wait.
FLUSH_ROWS = 2048
#: A challenger that fails on every request is logged once in this many seconds (and counted always).
LOG_EVERY_SECONDS = 10.0
#: The id suffix of a shadow answer: ``<champion prediction id>.shadow``.
SHADOW_SUFFIX = ".shadow"


class CanaryRouter:
    """Chooses, request by request, whether the canary challenger answers (see the module docstring)."""

    #: Credit per 100 %: percent counts in millionths of a request, in integers, so that float rounding
    #: never loses or adds a turn (0.1 added ten times is not 1.0 in floats).
    SCALE = 1_000_000

    def __init__(self) -> None:
        self._version: int | None = None
        self._credit = 0
        #: Requests routed since the current challenger's trial started: (to the challenger, in all).
        self.taken = 0
        self.seen = 0

    def take(self, trial: Trial) -> bool:
        """Whether ``trial``'s challenger answers this request."""
        if trial.version != self._version:
            self._version, self._credit, self.taken, self.seen = trial.version, 0, 0, 0
        self.seen += 1
        self._credit += round(trial.percent * self.SCALE / 100)
        if self._credit >= self.SCALE:
            self._credit -= self.SCALE
            self.taken += 1
            return True
        return False

    def stats(self, trial: Trial) -> dict[str, int]:
        """What this process routed in ``trial`` so far."""
        if trial.version != self._version:
            return {"requests": 0, "to_challenger": 0}
        return {"requests": self.seen, "to_challenger": self.taken}


class Throttled:
    """Log a recurring failure once per ``every`` seconds, with how many were not logged since."""

    def __init__(self, every: float = LOG_EVERY_SECONDS) -> None:
        self.every = every
        self._last = -float("inf")
        self._quiet = 0

    def __call__(self, message: str, *args: Any, exc: BaseException | None = None) -> None:
        now = time.monotonic()
        if now - self._last < self.every:
            self._quiet += 1
            return
        more = f" ({self._quiet} more since the last such line)" if self._quiet else ""
        logger.error(message + "%s", *args, more, exc_info=exc)
        self._last, self._quiet = now, 0


class ShadowRunner:
    """Runs a shadow challenger beside the champion (see the module docstring)."""

    def __init__(self, log: PredictionLog, metrics: ServerMetrics, *, max_rows: int,
                 max_pending_rows: int = MAX_PENDING_ROWS, inline_rows: int = 0) -> None:
        self.log = log
        self.metrics = metrics
        self.max_rows = max_rows
        self.max_pending_rows = max_pending_rows
        self.inline_rows = inline_rows
        # One thread predicts the large requests and writes the shadow answers: shadow work queues behind
        # shadow work only.
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="tidal-shadow", initializer=cap_threads)
        self._tasks: set[asyncio.Task[None]] = set()  # referenced, so a running task is not collected
        self._batch: list[tuple[ServingState, Sequence[Prediction]]] = []
        self._batched_rows = 0
        self._pending_rows = 0  # submitted, not yet stored (or failed)
        self._flusher: asyncio.Task[None] | None = None
        self._hurry: asyncio.Event | None = None
        self._log = Throttled()
        #: Shadow rows stored since the server started.
        self.logged = 0

    @property
    def pending(self) -> int:
        """Rows whose shadow answers are not stored yet."""
        return self._pending_rows

    def submit(self, trial: Trial, doc: Any, served: Sequence[Prediction]) -> None:
        """Start the shadow work of one request whose champion answers ``served`` are committed; returns at
        once (call it on the event loop)."""
        if not served:
            return
        if self._pending_rows and self._pending_rows + len(served) > self.max_pending_rows:
            self.metrics.shadow_dropped.labels(trial.state.name).inc()
            self._log("shadow %s: %d rows still wait for shadow work; skipping new requests", trial.state.label,
                      self._pending_rows)
            return
        self._pending_rows += len(served)
        task = asyncio.get_running_loop().create_task(self._shadow(trial, doc, served))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shadow(self, trial: Trial, doc: Any, served: Sequence[Prediction]) -> None:
        state = trial.state
        try:
            rows = state.schema.instances(doc, max_rows=self.max_rows)
            if len(rows) <= self.inline_rows:
                answers = predict_rows(state, rows)
            else:
                answers = await asyncio.get_running_loop().run_in_executor(self._pool, predict_rows, state, rows)
            first = served[0]
            ids = served.ids if isinstance(served, PredictionBatch) else [p.id for p in served]
            records = make_records(state, rows, answers, [i + SHADOW_SUFFIX for i in ids],
                                   request_id=first.request_id, now=first.time, deployment="shadow", served=False)
        except Exception as exc:
            self._pending_rows -= len(served)
            self._failed(state, exc, "failed on a request the champion answered")
            return
        self._batch.append((state, records))
        self._batched_rows += len(records)
        if self._flusher is None:
            self._hurry = asyncio.Event()
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        elif self._batched_rows >= FLUSH_ROWS and self._hurry is not None:
            self._hurry.set()

    async def _flush(self) -> None:
        """Store the batched shadow answers every FLUSH_SECONDS until none are left."""
        loop = asyncio.get_running_loop()
        try:
            while self._batch:
                if self._batched_rows < FLUSH_ROWS and self._hurry is not None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._hurry.wait(), FLUSH_SECONDS)
                    self._hurry.clear()
                batch, self._batch, self._batched_rows = self._batch, [], 0
                try:
                    outcomes = await loop.run_in_executor(self._pool, self._store, batch)
                except Exception as exc:  # the pool is gone (the server stops): these rows are lost
                    outcomes = [exc] * len(batch)
                for (state, records), error in zip(batch, outcomes, strict=True):
                    self._pending_rows -= len(records)
                    if error is None:
                        self.logged += len(records)
                        self.metrics.predicted(state.name, state.version, "shadow", len(records))
                    else:
                        self._failed(state, error, "answers could not be stored")
        finally:
            self._flusher = None

    def _store(self, batch: list[tuple[ServingState, Sequence[Prediction]]]) -> list[BaseException | None]:
        """Append a batch in one transaction; if that fails, each request's rows on their own (in the
        shadow thread: appending blocks until the commit)."""
        try:
            self.log.append(PredictionChain([records for _, records in batch]))
            return [None] * len(batch)
        except Exception as exc:
            if len(batch) == 1:
                return [exc]
        outcomes: list[BaseException | None] = []
        for _, records in batch:  # storing the very same prediction again is harmless, if some got in
            try:
                self.log.append(records)
                outcomes.append(None)
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    def _failed(self, state: ServingState, exc: BaseException, what: str) -> None:
        self.metrics.challenger_errors.labels(state.name, "shadow").inc()
        # the challenger's problem, not the client's: the rows were the champion's to answer
        self._log("shadow %s %s: %s: %s", state.label, what, type(exc).__name__, exc,
                  exc=None if isinstance(exc, ApiError) else exc)

    async def drain(self, timeout: float) -> None:
        """Finish the pending shadow work and store it now (waiting up to ``timeout`` seconds): a server
        stopping gracefully still logs the shadow answers of the requests it answered."""
        deadline = asyncio.get_running_loop().time() + timeout
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        if self._flusher is not None:
            if self._hurry is not None:
                self._hurry.set()
            left = max(0.0, deadline - asyncio.get_running_loop().time())
            await asyncio.wait({self._flusher}, timeout=left)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


__all__ = [
    "FLUSH_ROWS", "FLUSH_SECONDS", "LOG_EVERY_SECONDS", "MAX_PENDING_ROWS", "SHADOW_SUFFIX", "CanaryRouter",
    "ShadowRunner", "Throttled",
]
