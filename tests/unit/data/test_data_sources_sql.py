"""The SQL source on SQLite files and on a real PostgreSQL (when TIDAL_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest
import sqlalchemy as sa

from tidal.core.errors import SourceError
from tidal.data.sources import EmptySourceError, read_source, resolve_source
from tidal.data.sources.sql import mask_password

POSTGRES_URL = os.environ.get("TIDAL_TEST_POSTGRES_URL")
needs_postgres = pytest.mark.skipif(
    not POSTGRES_URL,
    reason="set TIDAL_TEST_POSTGRES_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test) to run",
)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "prices.db"
    path.parent.mkdir()
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE prices (t INTEGER, price REAL, label TEXT)")
        rows = [(1, 0.5, "up"), (2, 0.25, "down"), (3, 1.0, "up")]
        conn.executemany("INSERT INTO prices VALUES (?, ?, ?)", rows)
    return path


def test_sql_urls_resolve_to_the_sql_source() -> None:
    for uri in ("sqlite:///x.db", "postgresql+psycopg://u@h/db", "mysql+pymysql://u@h/db", "postgres://u@h/d"):
        assert resolve_source(uri).name == "sql"


def test_sqlite_with_url_encoded_query_relative_to_base_dir(tmp_path: Path, sqlite_db: Path) -> None:
    query = quote("SELECT t, price, label FROM prices WHERE label = 'up' ORDER BY t")
    df = read_source(f"sqlite:///data/prices.db?query={query}", base_dir=tmp_path)
    assert df.to_dict("list") == {"t": [1, 3], "price": [0.5, 1.0], "label": ["up", "up"]}
    assert isinstance(df.index, pd.RangeIndex)


def test_sqlite_absolute_path_with_query_from_the_spec(sqlite_db: Path) -> None:
    df = read_source(f"sqlite:///{sqlite_db}", base_dir="/unused", query="SELECT * FROM prices ORDER BY t")
    assert df["t"].tolist() == [1, 2, 3]


def test_sqlite_whole_table(tmp_path: Path, sqlite_db: Path) -> None:
    df = read_source("sqlite:///data/prices.db?table=prices", base_dir=tmp_path)
    assert list(df.columns) == ["t", "price", "label"] and len(df) == 3


def test_sqlite_percent_and_colon_are_not_parameters(tmp_path: Path, sqlite_db: Path) -> None:
    query = "SELECT label, '10:30' AS at FROM prices WHERE label LIKE 'u%' ORDER BY t"
    df = read_source("sqlite:///data/prices.db", base_dir=tmp_path, query=query)
    assert df.to_dict("list") == {"label": ["up", "up"], "at": ["10:30", "10:30"]}


def test_sqlite_missing_database_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as info:
        read_source("sqlite:///data/nope.db?query=SELECT%201", base_dir=tmp_path)
    expected = f"database file not found: {tmp_path / 'data' / 'nope.db'} — check data.source in tidal.yaml"
    assert str(info.value) == expected
    assert not (tmp_path / "data" / "nope.db").exists()  # SQLite would have created it


def test_sql_without_a_query(tmp_path: Path, sqlite_db: Path) -> None:
    with pytest.raises(SourceError, match=r"no query for the SQL source sqlite:///data/prices\.db — set"):
        read_source("sqlite:///data/prices.db", base_dir=tmp_path)


def test_sql_query_given_twice(tmp_path: Path, sqlite_db: Path) -> None:
    with pytest.raises(SourceError, match=r"more than one of data\.query"):
        read_source("sqlite:///data/prices.db?query=SELECT%201", base_dir=tmp_path, query="SELECT 2")


def test_sql_error_carries_the_database_message(tmp_path: Path, sqlite_db: Path) -> None:
    with pytest.raises(SourceError) as info:
        read_source("sqlite:///data/prices.db", base_dir=tmp_path, query="SELECT * FROM nope")
    message = str(info.value)
    assert message.startswith("SQL query failed on sqlite:///data/prices.db: no such table: nope")
    assert "check data.query" in message
    assert "sqlalche.me" not in message and "\n" not in message


def test_query_with_no_rows(tmp_path: Path, sqlite_db: Path) -> None:
    with pytest.raises(EmptySourceError, match="returned no rows"):
        read_source("sqlite:///data/prices.db", base_dir=tmp_path, query="SELECT * FROM prices WHERE t > 99")


def test_unknown_driver(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="SQLAlchemy has no dialect or driver for 'sqlite\\+nosuch'"):
        read_source("sqlite+nosuch:///x.db", base_dir=tmp_path, query="SELECT 1")


@pytest.mark.skipif(importlib.util.find_spec("psycopg2") is not None, reason="psycopg2 is installed")
def test_missing_driver_gives_the_install_command(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as info:
        read_source("postgresql+psycopg2://me:s3cret@db.example/prod", base_dir=tmp_path, query="SELECT 1")
    message = str(info.value)
    assert "driver for 'postgresql+psycopg2' is not installed" in message
    assert "pip install psycopg2-binary" in message and "postgresql+psycopg://" in message
    assert "s3cret" not in message


def test_async_driver_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="async driver 'aiosqlite'"):
        read_source("sqlite+aiosqlite:///x.db", base_dir=tmp_path, query="SELECT 1")


def test_postgres_scheme_is_corrected() -> None:
    with pytest.raises(SourceError) as info:
        read_source("postgres://me:s3cret@db/prod", base_dir=".", query="SELECT 1")
    assert "postgresql+psycopg://" in str(info.value) and "s3cret" not in str(info.value)


def test_connection_failure_masks_the_password(tmp_path: Path) -> None:
    # Port 1 on localhost: nothing listens there, the connection is refused at once.
    with pytest.raises(SourceError) as info:
        read_source("postgresql+psycopg://me:s3cret@127.0.0.1:1/prod?connect_timeout=2", base_dir=tmp_path,
                    query="SELECT 1")
    message = str(info.value)
    assert message.startswith("cannot connect to postgresql+psycopg://me:***@127.0.0.1:1/prod")
    assert "s3cret" not in message and "check the host, port" in message


def test_mask_password() -> None:
    assert mask_password("postgresql://me:s3cret@h/db") == "postgresql://me:***@h/db"
    assert mask_password("postgresql://me@h/db") == "postgresql://me@h/db"
    assert mask_password("data/x.csv") == "data/x.csv"


# -- PostgreSQL -----------------------------------------------------------------------------------


@pytest.fixture
def pg_table() -> Iterator[str]:
    assert POSTGRES_URL
    name = f"tidal_test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(POSTGRES_URL)
    frame = pd.DataFrame({"t": [1, 2, 3], "price": [0.5, 0.25, 1.0], "label": ["up", "down", "up"]})
    try:
        frame.to_sql(name, engine, index=False)
        yield name
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
        engine.dispose()


@pytest.mark.postgres
@needs_postgres
def test_postgres_read_with_query(pg_table: str) -> None:
    assert POSTGRES_URL
    df = read_source(POSTGRES_URL, base_dir="/unused", query=f"SELECT * FROM {pg_table} ORDER BY t")
    assert df.to_dict("list") == {"t": [1, 2, 3], "price": [0.5, 0.25, 1.0], "label": ["up", "down", "up"]}


@pytest.mark.postgres
@needs_postgres
def test_postgres_query_in_the_url_with_percent_and_casts(pg_table: str) -> None:
    assert POSTGRES_URL
    query = quote(f"SELECT t::float8 AS t, label FROM {pg_table} WHERE label LIKE 'd%'")
    df = read_source(f"{POSTGRES_URL}?query={query}", base_dir="/unused")
    assert df.to_dict("list") == {"t": [2.0], "label": ["down"]}


@pytest.mark.postgres
@needs_postgres
def test_postgres_whole_table(pg_table: str) -> None:
    assert POSTGRES_URL
    assert len(read_source(f"{POSTGRES_URL}?table={pg_table}", base_dir="/unused")) == 3


@pytest.mark.postgres
@needs_postgres
def test_postgres_error_is_the_database_message() -> None:
    assert POSTGRES_URL
    with pytest.raises(SourceError, match=r'SQL query failed on .*: relation "tidal_no_such_table" does not'):
        read_source(POSTGRES_URL, base_dir="/unused", query="SELECT * FROM tidal_no_such_table")
