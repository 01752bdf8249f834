"""Long actions of the management API that run beside the requests: a backtest started from the API.

A backtest replays the whole data set through the loop (seconds to minutes), longer than an HTTP client or a
proxy waits for an answer. ``POST /api/v1/backtests`` therefore starts it on a thread of the server and answers
``202`` with the job at once; ``GET /api/v1/backtests/jobs/{id}`` says ``running``, ``done`` (with the result,
as ``tidal backtest --json``) or ``failed`` (with the error's line and hint: a failed backtest is never shown
as a result). One backtest runs at a time per server (a second start is a ``409`` naming who started the one
that runs), because each takes the CPU a replay needs. Jobs live in the server's memory: the result outlives
the process as the workspace's ``backtest.done`` event, which ``GET /api/v1/backtests`` lists.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tidal.core.errors import TidalError

logger = logging.getLogger("tidal.ui")
#: How many finished jobs a server remembers (their results stay in the events for good).
KEPT = 20


@dataclass
class Job:
    """One backtest started from the API."""

    id: str
    by: str
    started_at: datetime
    status: str = "running"  # running | done | failed
    finished_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": "backtest", "status": self.status, "by": self.by,
                               "started_at": self.started_at.isoformat(),
                               "finished_at": self.finished_at.isoformat() if self.finished_at else None}
        if self.result is not None:
            out["result"] = self.result
        if self.error:
            out["error"] = self.error
        return out


class Busy(Exception):
    """A job is running already; ``job`` is it."""

    def __init__(self, job: Job) -> None:
        super().__init__(job.id)
        self.job = job


class BacktestJobs:
    """Runs ``work`` (the workspace's backtest, as a dict) on a thread, one at a time; ``failed`` is told of a
    job that failed (the API records it as an event)."""

    def __init__(self, work: Callable[[], dict[str, Any]], *, failed: Callable[[Job], None] | None = None,
                 now: Callable[[], datetime] | None = None) -> None:
        self._work = work
        self._failed = failed
        self._now = now or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._running: Job | None = None

    def start(self, by: str) -> Job:
        """Start a backtest for ``by`` (an actor); :class:`Busy` if one is running."""
        with self._lock:
            if self._running is not None:
                raise Busy(self._running)
            job = Job(id=uuid.uuid4().hex[:12], by=by, started_at=self._now())
            self._running = job
            self._jobs[job.id] = job
            finished = [j for j in self._jobs.values() if j.status != "running"]
            for old in finished[: max(0, len(finished) - KEPT)]:
                del self._jobs[old.id]
        threading.Thread(target=self._run, args=(job,), name=f"tidal-backtest-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def running(self) -> Job | None:
        with self._lock:
            return self._running

    def _run(self, job: Job) -> None:
        result: dict[str, Any] | None = None
        error: dict[str, str] = {}
        try:
            result = self._work()
        except TidalError as exc:
            error = {"error": exc.message, **({"hint": exc.hint} if exc.hint else {})}
        except Exception as exc:  # a bug: said as one, and the server goes on serving
            logger.exception("backtest %s started by %s failed", job.id, job.by)
            error = {"error": f"internal error ({type(exc).__name__}: {exc})",
                     "hint": "this is a bug in tidal: the server log has the traceback"}
        with self._lock:
            job.finished_at = self._now()
            job.status, job.result, job.error = ("failed", None, error) if error else ("done", result, {})
            self._running = None
        if error:
            logger.warning("backtest %s started by %s failed: %s", job.id, job.by, error["error"])
            if self._failed is not None:
                try:
                    self._failed(job)
                except Exception:  # the store may be what failed; the job still says why
                    logger.exception("the failure of backtest %s could not be recorded", job.id)


__all__ = ["BacktestJobs", "Busy", "Job"]
