"""What only the SQL metadata stores (SQLite, PostgreSQL) have: persistence, migrations on open, URLs."""

from __future__ import annotations

import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tidal.core.entities import Metric
from tidal.core.errors import StorageError
from tidal.core.ports import MetadataStore
from tidal.storage import open_metadata_store

from ._make import T0, make_mv, make_run, uid


def test_reopened_store_still_has_the_data(sql_url: str) -> None:
    with closing(open_metadata_store(sql_url)) as first:
        run = make_run()
        first.create_run(run)
        first.log_batch(run.id, metrics=[Metric("m", 1.5, 0, T0)], params={"p": "1"})
        first.create_model_version(make_mv())
    with closing(open_metadata_store(sql_url)) as second:
        assert second.get_run(run.id) == run
        assert second.get_metrics(run.id) == [Metric("m", 1.5, 0, T0)]
        assert second.create_model_version(make_mv()).version == 2


def test_committed_data_survives_a_crash(sql_url: str) -> None:
    script = (
        "import os, sys\n"
        "from datetime import datetime, UTC\n"
        "from tidal.core.entities import Metric, Run, RunStatus\n"
        "from tidal.storage import open_metadata_store\n"
        "s = open_metadata_store(sys.argv[1])\n"
        "s.create_run(Run(id='crash', project='p', status=RunStatus.RUNNING, started_at=datetime.now(UTC)))\n"
        "s.log_batch('crash', metrics=[Metric('m', float(i), i) for i in range(10)])\n"
        "os._exit(0)  # no close, no cleanup: as if the process were killed\n"
    )
    subprocess.run([sys.executable, "-c", script, sql_url], check=True, timeout=120)
    with closing(open_metadata_store(sql_url)) as store:
        assert [m.value for m in store.get_metrics("crash")] == [float(i) for i in range(10)]


def test_opening_the_same_store_from_threads_at_once(sql_url: str) -> None:
    threads = 6
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []
    stores: list[MetadataStore] = []

    def open_and_write(n: int) -> None:
        try:
            barrier.wait()
            s = open_metadata_store(sql_url)
            stores.append(s)
            s.create_run(make_run(f"thread-{n}"))
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=open_and_write, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    try:
        assert errors == []
        assert sorted(r.id for r in stores[0].list_runs()) == sorted(f"thread-{n}" for n in range(threads))
    finally:
        for s in stores:
            s.close()


def test_opening_an_up_to_date_store_does_not_migrate(sql_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    open_metadata_store(sql_url).close()

    def fail(*args: Any) -> None:
        raise AssertionError("Alembic ran on a store that was already at head")

    monkeypatch.setattr("alembic.command.upgrade", fail)
    open_metadata_store(sql_url).close()
    open_metadata_store(sql_url).close()


def test_migrated_schema_matches_the_table_definitions(sql_url: str) -> None:
    import sqlalchemy as sa
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from tidal.storage.testing import metadata

    open_metadata_store(sql_url).close()
    engine = sa.create_engine(sql_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_schema_revision_is_the_newest_migration() -> None:
    from alembic.script import ScriptDirectory

    from tidal.storage.testing import MIGRATIONS_DIR, SCHEMA_REVISION

    assert ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head() == SCHEMA_REVISION


def test_a_store_from_a_newer_tidal_is_refused(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "newer.db"
    open_metadata_store(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StorageError, match="newer tidal") as info:
        open_metadata_store(f"sqlite:///{path}")
    assert "upgrade tidal" in str(info.value)


def test_sqlite_uses_wal_and_creates_the_folder(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "a" / "b" / "tidal.db"
    open_metadata_store(f"sqlite:///{path}").close()
    assert path.is_file()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("url, needle", [
    ("mysql://user@host/db", "sqlite:///"),
    ("nonsense", "sqlite:///"),
    ("sqlite://", "memory://"),
    ("sqlite:///:memory:", "memory://"),
    ("postgresql+psycopg2://u@h/db", "postgresql+psycopg://"),
])
def test_unsupported_urls_say_what_is_supported(url: str, needle: str) -> None:
    with pytest.raises(StorageError) as info:
        open_metadata_store(url)
    assert needle in str(info.value)


def test_unreachable_server_names_the_url_but_not_the_password() -> None:
    url = "postgresql+psycopg://alice:s3cret@127.0.0.1:1/tidal?connect_timeout=2"
    with pytest.raises(StorageError) as info:
        open_metadata_store(url)
    message = str(info.value)
    assert "127.0.0.1:1" in message and "alice" in message
    assert "s3cret" not in message
    assert "running and reachable" in message


def test_missing_database_says_how_to_create_it(postgres_url: str) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url).set(database=f"no_such_db_{uid()}").render_as_string(hide_password=False)
    with pytest.raises(StorageError, match="does not exist") as info:
        open_metadata_store(url)
    assert "createdb" in str(info.value)


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"not sqlite at all " * 100)
    with pytest.raises(StorageError, match="not a database") as info:
        open_metadata_store(f"sqlite:///{path}")
    assert str(path) in str(info.value)


def test_unwritable_sqlite_location(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match="cannot create the folder"):
        open_metadata_store(f"sqlite:///{blocker / 'sub' / 'tidal.db'}")


def test_postgres_without_psycopg_gives_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "psycopg" else real(name, *a))
    with pytest.raises(StorageError) as info:
        open_metadata_store("postgresql+psycopg://u@localhost/db")
    assert "pip install 'tidal[postgres]'" in str(info.value)
