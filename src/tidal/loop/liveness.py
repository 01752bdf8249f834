"""Telling live work from dead work: heartbeats for runs and leases, and runs whose process is gone.

A run is recorded ``running`` when it starts and ``succeeded``/``failed`` when it ends; a process killed in
between (SIGKILL, a crash, a lost machine) ends neither. So a running pipeline beats: a background thread
records ``heartbeat_at`` every :data:`RUN_HEARTBEAT_S` seconds, and the run carries its owner (host and
process id). :func:`mark_abandoned` (called by the next ``tidal run`` and by ``tidal runs ls``) marks a run
``abandoned`` when its owner's process is gone (same host) or its heartbeat is older than
:data:`ABANDONED_AFTER_S` (any host), with a ``run.abandoned`` event that says which.

The loop controller's lease is kept the same way: a :class:`Heartbeat` renews it every third of its length
while the controller lives, so that a killed controller blocks a new one for one lease length at most.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from tidal.core.entities import Event, Run, RunStatus
from tidal.core.ports import Clock, MetadataStore

logger = logging.getLogger("tidal.loop")

#: Seconds between a running pipeline's heartbeats.
RUN_HEARTBEAT_S = 10.0
#: A running run whose last heartbeat (or start, if it never beat) is older than this is abandoned.
ABANDONED_AFTER_S = 60.0
#: How many recent runs :func:`mark_abandoned` looks at.
RECENT_RUNS = 200


def owner_info() -> dict[str, Any]:
    """Who runs this: the host name and the process id (stored in a run's info as ``owner``)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True  # not knowable here: treat as alive, the heartbeat will tell
    return True


class Heartbeat:
    """Calls ``beat()`` every ``every`` seconds in a daemon thread until :meth:`stop` (or the ``with`` block
    ends). A beat that raises is logged and retried at the next interval: a store that is briefly
    unavailable must not kill the work it watches."""

    def __init__(self, beat: Callable[[], Any], every: float, *, name: str = "tidal-heartbeat") -> None:
        self._beat = beat
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.beats = 0
        self.failures = 0

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._beat()
                self.beats += 1
            except Exception as exc:  # logged; the next beat tries again
                self.failures += 1
                if self.failures == 1 or self.failures % 30 == 0:
                    logger.warning("heartbeat failed (%d so far): %s: %s", self.failures, type(exc).__name__, exc)


def abandoned_because(run: Run, now: datetime, *, host: str | None = None,
                      after_s: float = ABANDONED_AFTER_S) -> str | None:
    """Why the running ``run`` is abandoned at ``now``, or None while it may still be alive."""
    if run.status != RunStatus.RUNNING:
        return None
    owner = run.info.get("owner") or {}
    here = host or socket.gethostname()
    pid = owner.get("pid")
    last = run.heartbeat_at or run.started_at
    if owner.get("host") == here and isinstance(pid, int) and not process_alive(pid):
        return f"its process ({here}, pid {pid}) is gone"
    if now - last > timedelta(seconds=after_s):
        beat = "heartbeat" if run.heartbeat_at else "start, with no heartbeat since,"
        where = f" on {owner.get('host')} (pid {pid})" if owner else ""
        return f"its last {beat} was {int((now - last).total_seconds())} s ago{where}"
    return None


def mark_abandoned(store: MetadataStore, project: str, clock: Clock) -> list[Run]:
    """Mark the project's running runs whose process is gone as ``abandoned``, each with a ``run.abandoned``
    event; returns them. A run is never marked while it may be alive (see :func:`abandoned_because`)."""
    now = clock.now()
    marked: list[Run] = []
    for run in store.list_runs(project, limit=RECENT_RUNS):
        why = abandoned_because(run, now)
        if why is None:
            continue
        ended = run.heartbeat_at or run.started_at
        message = f"run {run.id[:8]} abandoned: {why}; it did not finish"
        with store.atomic():
            if store.get_run(run.id).status != RunStatus.RUNNING:  # it finished meanwhile
                continue
            store.finish_run(run.id, RunStatus.ABANDONED, ended, error=message)
            store.append_event(Event(kind="run.abandoned", subject=f"run:{run.id}", message=message, time=now,
                                     data={"owner": run.info.get("owner"), "heartbeat_at": run.heartbeat_at
                                           and run.heartbeat_at.isoformat(), "trigger": run.trigger}))
        marked.append(store.get_run(run.id))
    return marked


@contextlib.contextmanager
def beating(store: MetadataStore, run_id: str, clock: Clock, every: float | None) -> Any:
    """Heartbeats of the run ``run_id`` while the block runs (none when ``every`` is None)."""
    if every is None:
        yield None
        return
    with Heartbeat(lambda: store.heartbeat_run(run_id, clock.now()), every, name="tidal-run-heartbeat") as beat:
        yield beat


__all__ = ["ABANDONED_AFTER_S", "RUN_HEARTBEAT_S", "Heartbeat", "abandoned_because", "beating", "mark_abandoned",
           "owner_info", "process_alive"]
