"""The background WAL checkpointer never stops for good: a checkpoint that fails (a full disk, a database
that cannot be opened) is logged once, retried with a growing pause, and checkpoints resume, with one line
saying so, as soon as they succeed again. tests/serve/test_disk_full.py shows the same with a full disk."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tidal.storage.testing import WalCheckpointer


def test_checkpoints_resume_after_failures(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "not-yet"
    db = folder / "log.db"
    engine = sa.create_engine(f"sqlite:///{db}")  # its folder does not exist: every connection attempt fails
    checkpointer = WalCheckpointer(engine, "the test log", interval=0.02, max_backoff=0.2)
    try:
        with caplog.at_level(logging.INFO, logger="tidal.storage"):
            checkpointer.wrote(1)
            time.sleep(1.5)  # at most 0.2 s apart: several attempts, all failing
            failing = [r.getMessage() for r in caplog.records]
            assert checkpointer.failures >= 5, checkpointer.failures
            assert len(failing) == 1 and "checkpoints of the test log failed" in failing[0], failing
            assert "unable to open database file" in failing[0]

            folder.mkdir()  # the database can be opened again
            with sqlite3.connect(db) as conn:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("CREATE TABLE t (x)")
                conn.execute("INSERT INTO t VALUES (1)")
            checkpointer.wrote(1)
            deadline = time.monotonic() + 5
            while checkpointer.checkpoints == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
        assert checkpointer.checkpoints >= 1
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 2 and "resumed" in lines[1] and "failed attempt" in lines[1], lines
    finally:
        checkpointer.close()
        engine.dispose()
    assert checkpointer.failures == 0
