"""The SQL source only reads: one statement, in a read-only transaction that is rolled back.

On SQLite always, on PostgreSQL when TIDAL_TEST_POSTGRES_URL is set, on MySQL/MariaDB when
TIDAL_TEST_MYSQL_URL is set and its driver is installed. Each database gets a ``victim`` table; every
hostile query is refused with a clear SourceError and the table is left exactly as it was.
"""

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
from sqlalchemy.engine import make_url

from tidal.core.errors import SourceError
from tidal.data.sources import read_source
from tidal.data.sources.sql import _run

POSTGRES_URL = os.environ.get("TIDAL_TEST_POSTGRES_URL")
MYSQL_URL = os.environ.get("TIDAL_TEST_MYSQL_URL")
ROWS = {"a": [1, 2], "b": ["x;y", "z"]}


def _mysql_ready() -> bool:
    return bool(MYSQL_URL) and any(importlib.util.find_spec(m) for m in ("pymysql", "MySQLdb", "mariadb"))


@pytest.fixture(params=[
    "sqlite",
    pytest.param("postgresql", marks=[pytest.mark.postgres, pytest.mark.skipif(
        not POSTGRES_URL, reason="set TIDAL_TEST_POSTGRES_URL to run on PostgreSQL")]),
    pytest.param("mysql", marks=pytest.mark.skipif(
        not _mysql_ready(), reason="set TIDAL_TEST_MYSQL_URL and install a MySQL driver to run on MySQL/MariaDB")),
])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(URL, name of a fresh victim table holding ROWS)."""
    if request.param == "sqlite":
        path = tmp_path / "v.db"
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE victim (a INTEGER, b TEXT)")
            conn.executemany("INSERT INTO victim VALUES (?, ?)", list(zip(*ROWS.values(), strict=True)))
        yield f"sqlite:///{path}", "victim"
        return
    url = POSTGRES_URL if request.param == "postgresql" else MYSQL_URL
    assert url
    name = f"tidal_victim_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(url)
    pd.DataFrame(ROWS).to_sql(name, engine, index=False)
    try:
        yield url, name
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
        engine.dispose()


def _intact(url: str, table: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            assert pd.read_sql_query(sa.text(f"SELECT a, b FROM {table} ORDER BY a"), conn).to_dict("list") == ROWS
    finally:
        engine.dispose()


def test_several_statements_are_refused_and_nothing_runs(db: tuple[str, str]) -> None:
    url, table = db
    for query in (f"SELECT a FROM {table}; DROP TABLE {table}; COMMIT",
                  f"SELECT 1 AS x; COMMIT; DELETE FROM {table}",
                  f"SELECT 'x\\'; DROP TABLE {table}; --' AS s"):  # one statement only if \ escaped the quote
        with pytest.raises(SourceError, match=r"holds [23] SQL statements; tidal runs exactly one"):
            read_source(url, base_dir="/unused", query=query)
        with pytest.raises(SourceError, match="holds"):
            read_source(f"{url}?query={quote(query)}", base_dir="/unused")
    _intact(url, table)


def test_a_single_writing_statement_is_refused_by_the_database(db: tuple[str, str]) -> None:
    url, table = db
    for query in (f"DELETE FROM {table}", f"DROP TABLE {table}", f"INSERT INTO {table} VALUES (3, 'w')",
                  f"UPDATE {table} SET a = 9"):
        with pytest.raises(SourceError, match=r"SQL query failed on .*read-only|SQL query failed on .*not author"):
            read_source(url, base_dir="/unused", query=query)
    _intact(url, table)


def test_reads_still_work(db: tuple[str, str]) -> None:
    url, table = db
    reads = {
        f"SELECT a, b FROM {table} ORDER BY a": ROWS,
        f"SELECT a, b FROM {table} ORDER BY a;": ROWS,
        f"SELECT a, b FROM {table} ORDER BY a; -- the whole table": ROWS,
        f"WITH r AS (SELECT a, b FROM {table}) SELECT * FROM r ORDER BY a": ROWS,
        f"SELECT a, b FROM {table} WHERE b = 'x;y'": {"a": [1], "b": ["x;y"]},
        f"SELECT a, b FROM {table} WHERE b LIKE 'x%'": {"a": [1], "b": ["x;y"]},
    }
    for query, expected in reads.items():
        assert read_source(url, base_dir="/unused", query=query).to_dict("list") == expected, query
    _intact(url, table)


def test_sqlite_cannot_create_files(tmp_path: Path, db: tuple[str, str]) -> None:
    url, table = db
    if not url.startswith("sqlite"):
        pytest.skip("SQLite only")
    for query in (f"VACUUM INTO '{tmp_path / 'copy.db'}'", f"ATTACH DATABASE '{tmp_path / 'att.db'}' AS x",
                  "PRAGMA query_only = OFF"):
        with pytest.raises(SourceError, match="SQL query failed"):
            read_source(url, base_dir="/unused", query=query)
    assert not (tmp_path / "copy.db").exists() and not (tmp_path / "att.db").exists()
    _intact(url, table)


def test_an_empty_query_is_a_clear_error(db: tuple[str, str]) -> None:
    url, _ = db
    with pytest.raises(SourceError, match="is empty"):
        read_source(url, base_dir="/unused", query="-- nothing here\n;")


def test_a_commit_smuggled_past_the_check_still_cannot_write(db: tuple[str, str]) -> None:
    """Defence in depth: should several statements reach the database, the session stays read-only."""
    url, table = db
    if not url.startswith("postgresql"):
        pytest.skip("PostgreSQL runs several statements in one call; SQLite and MySQL drivers refuse them")
    with pytest.raises(SourceError, match="read-only transaction"):
        _run(make_url(url), f"SELECT 1 AS x; COMMIT; DROP TABLE {table}", "pg")
    _intact(url, table)
