"""Fixtures for the port contract suites: every adapter of a port runs the same tests.

``IMPLEMENTATIONS`` names the adapters of the metadata store and of the prediction log: ``memory``,
``sqlite`` (a file in ``tmp_path``) and ``postgres``, which runs when ``TIDAL_TEST_POSTGRES_URL`` is set
and is skipped otherwise. Each PostgreSQL test gets a fresh schema of its own (put first on the
connection's ``search_path`` through the URL), dropped afterwards, so tests never see each other's rows
and a rerun starts clean.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidal.core.ports import MetadataStore, PredictionLog
from tidal.storage import open_metadata_store, open_prediction_log

POSTGRES_ENV = "TIDAL_TEST_POSTGRES_URL"
POSTGRES_SKIP = "set TIDAL_TEST_POSTGRES_URL to run the PostgreSQL contract tests"

IMPLEMENTATIONS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
SQL_IMPLEMENTATIONS = IMPLEMENTATIONS[1:]


def postgres_schema_url(base: str, schema: str) -> str:
    """``base`` with ``schema`` first on the search path (libpq ``options``), password kept."""
    from sqlalchemy.engine import make_url

    url = make_url(base)
    options = " ".join(filter(None, [url.query.get("options", ""), f"-csearch_path={schema}"]))
    return url.update_query_dict({"options": options}).render_as_string(hide_password=False)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A store URL on the test PostgreSQL server, in a fresh schema dropped after the test."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(POSTGRES_SKIP)
    import sqlalchemy as sa

    schema = f"tidal_test_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(base, poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield postgres_schema_url(base, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=IMPLEMENTATIONS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty metadata store, once per implementation."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'tidal.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=SQL_IMPLEMENTATIONS)
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty SQL metadata store (SQLite, PostgreSQL): for persistence and migrations."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'tidal.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[MetadataStore]:
    """An empty metadata store, once per implementation; closed after the test."""
    opened = open_metadata_store(store_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(params=IMPLEMENTATIONS)
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty prediction log, once per implementation (SQLite: its own file, as in a
    workspace)."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'predictions.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def log(log_url: str) -> Iterator[PredictionLog]:
    """An empty prediction log, once per implementation; closed after the test."""
    opened = open_prediction_log(log_url)
    try:
        yield opened
    finally:
        opened.close()
