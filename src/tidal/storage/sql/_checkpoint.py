"""WAL checkpoints for the SQLite prediction log, off the request path.

In WAL mode SQLite appends each commit to the ``-wal`` file and, by default, the connection whose
commit takes the WAL past 1,000 pages copies the WAL back into the database right then (a checkpoint,
with an ``fsync``) before its commit returns. For the prediction log that commit belongs to a request
waiting for its answer: measured at 1,000-row appends, the checkpoints took half of the append time.

:class:`WalCheckpointer` moves that work to a background thread: the log's own connections checkpoint
only as a safety net (:data:`SAFETY_PAGES`, if the thread falls behind), and the thread runs a
``PASSIVE`` checkpoint a few times a second while predictions are being written. A passive checkpoint
never blocks the writer or readers, so requests keep committing meanwhile. ``journal_size_limit``
truncates the WAL after a reset, so a burst does not leave a large file behind.

The thread starts on the first write and again after a ``fork`` (a forked worker has no threads), and
holds no lock a fork could leave taken: it polls two plain attributes.

A checkpoint that fails (a full disk: the WAL's pages cannot be copied into a database file that would
have to grow) never stops the thread for good. It logs the first failure, closes its connection, and
tries again after a pause that doubles up to :data:`MAX_BACKOFF_S`; the first checkpoint that succeeds
again logs one line with how many attempts failed, over how long. Meanwhile the writers' own
checkpoints (:data:`SAFETY_PAGES`) still bound the WAL.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

#: Pages (4 KiB) in the WAL past which a writer checkpoints itself, if the thread has not.
SAFETY_PAGES = 16_384
#: Bytes the WAL file is truncated to after a checkpoint reset.
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024
#: Seconds between checks for new writes.
INTERVAL_S = 0.2
#: The longest pause between two attempts while checkpoints fail.
MAX_BACKOFF_S = 5.0

logger = logging.getLogger("tidal.storage")


def _pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA wal_autocheckpoint = {SAFETY_PAGES}")
        cursor.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
    finally:
        cursor.close()


class WalCheckpointer:
    """Checkpoints the SQLite database of ``engine`` in a background thread while it is written to.

    Call :meth:`wrote` after each commit (it only counts), and :meth:`close` at the end.
    """

    def __init__(self, engine: Engine, shown: str, *, interval: float | None = None,
                 max_backoff: float = MAX_BACKOFF_S) -> None:
        self._engine = engine
        self._shown = shown
        self._interval = INTERVAL_S if interval is None else interval
        self._max_backoff = max_backoff
        event.listen(engine, "connect", _pragmas)
        self._written = 0     # rows written, ever (read by the thread, so no lock is needed)
        self._checkpointed = 0
        self._stop = False
        self._thread: threading.Thread | None = None
        self.checkpoints = 0
        #: Attempts that failed since the last checkpoint that succeeded.
        self.failures = 0

    def wrote(self, rows: int) -> None:
        """Note that ``rows`` were committed; starts the thread if it is not running (first write, fork)."""
        self._written += rows
        thread = self._thread
        if (thread is None or not thread.is_alive()) and not self._stop:
            self._thread = threading.Thread(target=self._run, name="tidal-wal-checkpoint", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread (the last connection to close checkpoints what is left)."""
        self._stop = True
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        conn: Any = None
        pause = self._interval
        first_failure = 0.0
        try:
            while not self._stop:
                time.sleep(pause)
                written = self._written
                if written == self._checkpointed:
                    continue
                try:
                    if conn is None:
                        conn = self._engine.raw_connection()
                    cursor = conn.cursor()
                    try:
                        cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                        cursor.fetchall()
                    finally:
                        cursor.close()
                except Exception as exc:
                    # A full disk, a database that cannot be opened: say so once, start again from a new
                    # connection after a longer pause, and keep trying. The writers' own checkpoints
                    # (SAFETY_PAGES) still bound the WAL meanwhile.
                    if self.failures == 0:
                        first_failure = time.monotonic()
                        logger.warning("background checkpoints of %s failed: %s: %s (retrying, at most every "
                                       "%g s, until one succeeds)", self._shown, type(exc).__name__, exc,
                                       self._max_backoff)
                    self.failures += 1
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            conn.close()
                        conn = None
                    pause = min(max(pause, self._interval) * 2, self._max_backoff)
                    continue
                if self.failures:
                    logger.info("background checkpoints of %s resumed after %d failed attempt%s over %.0f s",
                                self._shown, self.failures, "" if self.failures == 1 else "s",
                                time.monotonic() - first_failure)
                    self.failures = 0
                    pause = self._interval
                self._checkpointed = written
                self.checkpoints += 1
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()


__all__ = ["INTERVAL_S", "MAX_BACKOFF_S", "WalCheckpointer"]
